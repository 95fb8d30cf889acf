"""The active router as one gateway replica holds it: read at start, swapped on ``policy.updated``.

Every gateway replica subscribes to ``policy.updated`` as a broadcast, so an activation
reaches all of them within the bus's delivery time; no restart. A request asks
:meth:`LiveRouter.advise` once: the prompt is embedded (in a worker thread: it is CPU
work, ~5 ms) and the router predicts each candidate's chance of a correct answer.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.gateway.selection import RouterAdvice
from llmproxy.optimizer.router.model import Router
from llmproxy.optimizer.router.store import active_router, load_router, version_from_uri
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.embeddings import MODEL_ID, TextEmbedder
from llmproxy.platform.events import decode_event
from llmproxy.v1 import events_pb2

__all__ = ["LiveRouter"]

log = structlog.get_logger(__name__)

#: the router reads at most this much of a prompt (the embedding model's window is smaller)
_MAX_PROMPT_CHARS = 4000


class LiveRouter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        embedder: TextEmbedder,
        *,
        embedding_model: str = MODEL_ID,
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._embedding_model = embedding_model
        self._router: Router | None = None

    @property
    def router(self) -> Router | None:
        return self._router

    def _use(self, router: Router | None) -> None:
        if router is not None and router.embedding_model != self._embedding_model:
            log.error(
                "router ignored: trained on another embedding model",
                version=router.version,
                expected=self._embedding_model,
                got=router.embedding_model,
            )
            return
        self._router = router
        log.info("router policy in use", version=router.version if router else None)

    async def load(self) -> None:
        """Read the active router from the database (at start)."""
        self._use(await active_router(self._sessions))
        if self._router is not None:
            await asyncio.to_thread(self._embedder.embed, ["warm up"])

    async def on_policy_updated(self, envelope: Envelope) -> None:
        """``policy.updated`` handler: a router policy names the version to load now."""
        event = decode_event(envelope, events_pb2.PolicyUpdated)
        if not event.HasField("router"):
            return  # a WFQ configuration: not ours
        policy = event.router
        version = version_from_uri(policy.artifact_uri) if policy.artifact_uri else policy.version
        if self._router is not None and self._router.version == version:
            if self._router.threshold == policy.threshold:
                return
        router = await load_router(self._sessions, version)
        self._use(router)
        await asyncio.to_thread(self._embedder.embed, ["warm up"])

    async def advise(self, prompt: str) -> RouterAdvice | None:
        """The active router's predictions for ``prompt`` (None when no router is active)."""
        router = self._router
        if router is None or not prompt.strip():
            return None
        vectors = await asyncio.to_thread(self._embedder.embed, [prompt[:_MAX_PROMPT_CHARS]])
        return RouterAdvice(
            version=router.version,
            threshold=router.threshold,
            predictions=router.predict(vectors[0]),
        )
