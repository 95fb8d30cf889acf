"""The active router as one gateway replica holds it: read at start, swapped on ``policy.updated``.

Every gateway replica subscribes to ``policy.updated`` as a broadcast, so an activation
reaches all of them within the bus's delivery time; no restart. A request asks
:meth:`LiveRouter.advise` once: the prompt's first 12 tokens are embedded (in a worker
thread: CPU work, ~3.2 ms on one core) — skipped when the router gives the embedding no
weight — and the router predicts, from that and the prompt's text features, each
candidate's chance of a correct answer.
"""

from __future__ import annotations

import asyncio

import numpy as np
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.gateway.selection import RouterAdvice
from llmproxy.optimizer.router.model import ROUTING_MAX_TOKENS, Router
from llmproxy.optimizer.router.store import active_router, load_router, version_from_uri
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.embeddings import MODEL_ID, Embedder, TextEmbedder
from llmproxy.platform.events import decode_event
from llmproxy.v1 import events_pb2

__all__ = ["LiveRouter", "advise_with", "embedder_for"]

log = structlog.get_logger(__name__)

#: the router reads at most this much of a prompt (text features and the embedding's head)
_MAX_PROMPT_CHARS = 4000


class LiveRouter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        embedder: TextEmbedder | None = None,
        *,
        embedding_model: str = MODEL_ID,
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder or Embedder(max_tokens=ROUTING_MAX_TOKENS)
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
        if router is not None:
            self._embedder = embedder_for(router, self._embedder)
        self._router = router
        log.info("router policy in use", version=router.version if router else None)

    async def load(self) -> None:
        """Read the active router from the database (at start)."""
        self._use(await active_router(self._sessions))
        if self._router is not None:
            await asyncio.to_thread(self._embedder.embed, ["warm up"])

    async def on_policy_updated(self, envelope: Envelope) -> None:
        """``policy.updated`` handler: a router policy names the version to load now.

        A router policy with no version (``llmproxy router deactivate``) turns routing off.
        """
        event = decode_event(envelope, events_pb2.PolicyUpdated)
        if not event.HasField("router"):
            return  # a WFQ configuration: not ours
        policy = event.router
        version = version_from_uri(policy.artifact_uri) if policy.artifact_uri else policy.version
        if not version:
            self._router = None
            log.info("router policy in use", version=None)
            return
        if self._router is not None and self._router.version == version:
            if self._router.threshold == policy.threshold:
                return
        router = await load_router(self._sessions, version)
        self._use(router)
        await asyncio.to_thread(self._embedder.embed, ["warm up"])

    def decide(self, prompt: str) -> RouterAdvice | None:
        """The active router's predictions for ``prompt`` (blocking CPU work: ~4 ms)."""
        router = self._router
        if router is None or not prompt.strip():
            return None
        return advise_with(router, self._embedder, prompt)

    async def advise(self, prompt: str) -> RouterAdvice | None:
        """:meth:`decide` in a worker thread (None when no router is active)."""
        if self._router is None or not prompt.strip():
            return None
        return await asyncio.to_thread(self.decide, prompt)


def embedder_for(router: Router, embedder: TextEmbedder) -> TextEmbedder:
    """``embedder``, or a MiniLM embedder cut to the router's token window when it differs
    (vectors of another window are not the ones the router was fit on)."""
    if isinstance(embedder, Embedder) and embedder.max_tokens != router.embedding_max_tokens:
        return Embedder(max_tokens=router.embedding_max_tokens)
    return embedder


def advise_with(router: Router, embedder: TextEmbedder, prompt: str) -> RouterAdvice:
    """One routing decision's inputs: embed the prompt's head (only when the router reads the
    embedding), add its text features, predict each candidate's P(correct)."""
    text = prompt[:_MAX_PROMPT_CHARS]
    if router.uses_embedding:
        vector = embedder.embed([text])[0]
    else:
        vector = np.zeros(router.dimensions, dtype=np.float32)
    return RouterAdvice(
        version=router.version,
        threshold=router.threshold,
        predictions=router.predict(vector, text),
        rule=router.rule,
    )
