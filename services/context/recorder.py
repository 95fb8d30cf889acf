"""The context service's ``llm.completed`` consumer: remember each answered exchange."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.context.history_cache import PromptVectors
from llmproxy.context.repository import ConversationRepository, NewTurn
from llmproxy.context.servicer import embed_texts
from llmproxy.context.summaries import SummaryRefresher
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.db.idempotency import claim_event
from llmproxy.platform.embeddings import TextEmbedder, vector_to_bytes
from llmproxy.platform.errors import NotFoundError
from llmproxy.platform.events import decode_event
from llmproxy.v1 import common_pb2, events_pb2

__all__ = ["CONSUMER", "TurnRecorder"]

log = structlog.get_logger(__name__)

CONSUMER = "context-turns"


class TurnRecorder:
    """Appends each answered request's user turn and answer to its conversation.

    Each turn's embedding is computed here, once, off the request path, and stored with
    it; the prompt's, when this replica embedded it to build the reply's context, is taken
    from ``prompt_vectors`` instead of computed again. When the reply was built with the
    ``summary`` strategy, the summary refresher is woken afterwards (it decides whether a
    fold is due).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        count_tokens: Callable[[str], int],
        *,
        embedder: TextEmbedder | None = None,
        refresher: SummaryRefresher | None = None,
        prompt_vectors: PromptVectors | None = None,
    ) -> None:
        self._sessions = sessions
        self._count = count_tokens
        self._embedder = embedder
        self._refresher = refresher
        self._prompt_vectors = prompt_vectors

    async def __call__(self, envelope: Envelope) -> None:
        event = decode_event(envelope, events_pb2.LlmCompleted)
        scope = event.scope
        if event.error or not event.user_prompt or not scope.conversation_id:
            return  # failed, stateless, or not a user's request (e.g. a summariser call)
        occurred = event.meta.occurred_at.ToDatetime(UTC)
        texts = [event.user_prompt, event.answer]
        vectors: list[bytes | None] = [None, None]
        if self._embedder is not None:
            known = (
                self._prompt_vectors.take(scope.tenant_id, scope.conversation_id, texts[0])
                if self._prompt_vectors is not None
                else None
            )
            try:
                if known is not None:
                    vectors = [
                        vector_to_bytes(known),
                        *await embed_texts(self._embedder, texts[1:]),
                    ]
                else:
                    vectors = list(await embed_texts(self._embedder, texts))
            except Exception:
                # remembered without; the relevant strategy embeds it when it first needs it
                log.exception("could not embed turns", request_id=event.request_id)
        turns = [
            NewTurn("user", texts[0], self._count(texts[0]), vectors[0]),
            NewTurn(
                "assistant",
                texts[1],
                event.usage.output_tokens or self._count(texts[1]),
                vectors[1],
            ),
        ]
        async with self._sessions.begin() as session:
            if not await claim_event(
                session, consumer=CONSUMER, event_id=envelope.event_id, now=occurred
            ):
                return
            repo = ConversationRepository(session)
            try:
                conversation = await repo.get(
                    tenant_id=scope.tenant_id, conversation_id=scope.conversation_id
                )
            except NotFoundError:
                return  # erased meanwhile: never bring it back
            await repo.append(conversation, turns, request_id=event.request_id, now=occurred)
        if (
            self._refresher is not None
            and event.context.strategy == common_pb2.CONTEXT_STRATEGY_SUMMARY
        ):
            self._refresher.request(scope.tenant_id, scope.conversation_id)
