"""gRPC adapter of the Context service."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import grpc
import numpy as np
import numpy.typing as npt
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.context.fingerprint import context_fingerprint
from llmproxy.context.history_cache import CachedHistory, HistoryCache, PromptVectors
from llmproxy.context.repository import ConversationHead, ConversationRepository, NewTurn
from llmproxy.context.strategies import (
    ContextDefaults,
    ContextRequest,
    Strategy,
    check_bounds,
    plan_context,
)
from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.bus.subjects import CACHE_INVALIDATE
from llmproxy.platform.db.models import Conversation as ConversationRow
from llmproxy.platform.embeddings import DIMENSIONS, TextEmbedder, vector_to_bytes
from llmproxy.platform.errors import ConfigurationError, InvalidArgumentError, NotFoundError
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.v1 import common_pb2, context_pb2, context_pb2_grpc, events_pb2

__all__ = ["ContextServicer", "embed_texts", "strategy_from_proto"]

log = structlog.get_logger(__name__)

#: UNSPECIFIED is absent: it means "the app's or the service's default"
_STRATEGIES = {
    common_pb2.CONTEXT_STRATEGY_FULL: Strategy.FULL,
    common_pb2.CONTEXT_STRATEGY_LAST_K: Strategy.LAST_K,
    common_pb2.CONTEXT_STRATEGY_TOKEN_BUDGET: Strategy.TOKEN_BUDGET,
    common_pb2.CONTEXT_STRATEGY_SUMMARY: Strategy.SUMMARY,
    common_pb2.CONTEXT_STRATEGY_RELEVANT: Strategy.RELEVANT,
}
_STRATEGY_PROTO = {
    Strategy.FULL: common_pb2.CONTEXT_STRATEGY_FULL,
    Strategy.LAST_K: common_pb2.CONTEXT_STRATEGY_LAST_K,
    Strategy.TOKEN_BUDGET: common_pb2.CONTEXT_STRATEGY_TOKEN_BUDGET,
    Strategy.SUMMARY: common_pb2.CONTEXT_STRATEGY_SUMMARY,
    Strategy.RELEVANT: common_pb2.CONTEXT_STRATEGY_RELEVANT,
}
_ROLES = {
    "system": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
    "tool": common_pb2.ROLE_TOOL,
}
_ROLE_NAMES = {v: k for k, v in _ROLES.items()}


def strategy_from_proto(value: int) -> Strategy | None:
    """The strategy a policy names; None for UNSPECIFIED (use the default)."""
    if value == common_pb2.CONTEXT_STRATEGY_UNSPECIFIED:
        return None
    strategy = _STRATEGIES.get(value)
    if strategy is None:
        raise InvalidArgumentError(f"unknown context strategy {value}", field="context.strategy")
    return strategy


async def embed_texts(embedder: TextEmbedder, texts: Sequence[str]) -> list[bytes]:
    """Storage bytes of each text's embedding, computed off the event loop."""
    if not texts:
        return []
    vectors = await asyncio.to_thread(embedder.embed, list(texts))
    return [vector_to_bytes(v) for v in vectors]


def _embed_one(embedder: TextEmbedder, text: str) -> npt.NDArray[np.float32]:
    return np.asarray(embedder.embed([text])[0], dtype=np.float32)


def _require_tenant(scope: common_pb2.Scope) -> None:
    if not scope.tenant_id:
        raise InvalidArgumentError("scope.tenant_id is required", field="scope.tenant_id")


def _conversation_message(
    row: ConversationRow, turns: list[context_pb2.Turn]
) -> context_pb2.Conversation:
    message = context_pb2.Conversation(
        scope=common_pb2.Scope(
            tenant_id=row.tenant_id,
            app_id=row.app_id,
            user_id=row.user_id or "",
            conversation_id=row.id,
        ),
        turns=turns,
        summary=row.summary or "",
        summary_upto_seq=row.summary_upto_seq or 0,
    )
    message.created_at.FromDatetime(row.created_at)
    if row.reset_at is not None:
        message.reset_at.FromDatetime(row.reset_at)
    return message


def _input_room(context_window: int, max_output_tokens: int) -> int:
    """Tokens the prompt may take: the window less the answer's room (0: no limit)."""
    if context_window <= 0:
        return 0
    if max_output_tokens < 0:
        raise InvalidArgumentError(
            f"max_output_tokens must be >= 0, got {max_output_tokens}", field="max_output_tokens"
        )
    return max(1, context_window - max_output_tokens)


class ContextServicer(context_pb2_grpc.ContextServicer):
    """Builds contexts and keeps conversations; every call is scoped to the caller's tenant.

    ``embedder`` serves the ``relevant`` strategy (None: that strategy is refused). ``bus``
    carries the ``cache.invalidate`` that erasing a conversation sends, so cached answers of
    that conversation go with it. ``history_cache`` keeps conversations' turns and vectors
    between builds (see :mod:`llmproxy.context.history_cache`); ``prompt_vectors`` hands
    the prompt's embedding to the turn recorder, so a prompt is embedded once.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        count_tokens: Callable[[str], int],
        *,
        embedder: TextEmbedder | None = None,
        defaults: ContextDefaults | None = None,
        bus: EventBus | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        history_cache: HistoryCache | None = None,
        prompt_vectors: PromptVectors | None = None,
    ) -> None:
        self._sessions = sessions
        self._count = count_tokens
        self._embedder = embedder
        self._defaults = defaults or ContextDefaults()
        self._bus = bus
        self._now = clock
        self._cache = history_cache if history_cache is not None else HistoryCache()
        self._prompt_vectors = prompt_vectors

    @property
    def history_cache(self) -> HistoryCache:
        return self._cache

    async def BuildContext(
        self, request: context_pb2.BuildContextRequest, context: grpc.aio.ServicerContext
    ) -> context_pb2.BuildContextReply:
        scope = request.scope
        _require_tenant(scope)
        policy = request.policy
        strategy = self._defaults.strategy_for(scope.app_id, strategy_from_proto(policy.strategy))
        k = policy.k or (self._defaults.relevant_k if strategy is Strategy.RELEVANT else 0)
        base = ContextRequest(
            strategy=strategy,
            system_prompt=request.system_prompt,
            prompt=request.prompt,
            history=(),
            k=k,
            token_budget=policy.token_budget,
            reject_oversized_turn=policy.reject_oversized_turn,
            max_input_tokens=_input_room(request.context_window, request.max_output_tokens),
        )
        check_bounds(base)  # before anything is created for a request that will fail
        prompt_vector: asyncio.Future[npt.NDArray[np.float32]] | None = None
        if strategy is Strategy.RELEVANT:
            embedder = self._require_embedder()
            if scope.conversation_id:  # a new conversation has no turns to rank
                # the prompt's embedding is computed (in a thread, where onnxruntime lets go
                # of the GIL) while the history is read
                prompt_vector = asyncio.get_running_loop().run_in_executor(
                    None, _embed_one, embedder, request.prompt
                )
        try:
            if scope.conversation_id:
                head, history = await self._history(
                    scope.tenant_id,
                    scope.conversation_id,
                    with_summary=strategy is Strategy.SUMMARY,
                )
            else:
                async with self._sessions.begin() as session:
                    created = await ConversationRepository(session).create(
                        tenant_id=scope.tenant_id,
                        app_id=scope.app_id,
                        user_id=scope.user_id,
                        now=self._now(),
                    )
                head = ConversationHead(created.id, None, "", 0)
                history = CachedHistory.build(
                    scope.tenant_id, created.id, None, (), dimensions=DIMENSIONS
                )
            prompt_embedding = None
            if prompt_vector is not None:
                history = await self._with_embeddings(history)
                prompt_embedding = await prompt_vector
                if self._prompt_vectors is not None:
                    self._prompt_vectors.put(
                        scope.tenant_id, head.id, request.prompt, prompt_embedding
                    )
        finally:
            if prompt_vector is not None and not prompt_vector.done():
                prompt_vector.cancel()
        plan = plan_context(
            dataclasses.replace(
                base,
                history=history.turns,
                history_vectors=history.vectors,
                summary=head.summary,
                summary_upto_seq=head.summary_upto_seq,
                prompt_embedding=prompt_embedding,
            ),
            self._count,
        )
        return context_pb2.BuildContextReply(
            messages=[
                common_pb2.Message(role=_ROLES[m.role], content=m.content) for m in plan.messages
            ],
            report=common_pb2.ContextReport(
                strategy=_STRATEGY_PROTO[plan.strategy],
                tokens_sent=plan.tokens_sent,
                tokens_full_history=plan.tokens_full_history,
                turns_sent=plan.turns_sent,
                turns_total=plan.turns_total,
                truncated=plan.truncated,
                turns_summarized=plan.turns_summarized,
                turns_dropped_for_window=plan.turns_dropped_for_window,
            ),
            context_fingerprint=context_fingerprint(
                (m.role, m.content) for m in plan.messages[:-1]
            ),
            conversation_id=head.id,
        )

    async def _history(
        self, tenant_id: str, conversation_id: str, *, with_summary: bool
    ) -> tuple[ConversationHead, CachedHistory]:
        """The conversation's row (tenant-checked) and its history since the last reset.

        The row is always read; of the turns, only those newer than the ones this replica
        holds (all of them on a miss, or when the conversation was reset since).
        """
        cached = self._cache.get(tenant_id, conversation_id)
        try:
            async with self._sessions.begin() as session:
                repo = ConversationRepository(session)
                head, turns = await repo.read_since(
                    tenant_id=tenant_id,
                    conversation_id=conversation_id,
                    after_seq=cached.last_seq if cached is not None else 0,
                    with_summary=with_summary,
                )
                if cached is not None and cached.reset_at != head.reset_at:
                    cached = None  # reset meanwhile (on another replica): read it whole
                    head, turns = await repo.read_since(
                        tenant_id=tenant_id,
                        conversation_id=conversation_id,
                        after_seq=0,
                        with_summary=with_summary,
                    )
        except NotFoundError:
            self._cache.evict(tenant_id, conversation_id)  # erased (or never this tenant's)
            raise
        if cached is not None:
            history = cached.extend(turns)
        else:
            history = CachedHistory.build(
                tenant_id, head.id, head.reset_at, turns, dimensions=DIMENSIONS
            )
        self._cache.put(history)
        return head, history

    def _require_embedder(self) -> TextEmbedder:
        if self._embedder is None:
            raise ConfigurationError("the relevant strategy needs embeddings, which are off here")
        return self._embedder

    async def _with_embeddings(self, history: CachedHistory) -> CachedHistory:
        """Fill in embeddings of earlier turns stored without one, and store them.

        Turns get their embedding when they are appended; this covers turns written before
        embeddings existed or while the embedder failed. The last turn needs none.
        """
        missing = history.missing_embeddings()
        if not missing:
            return history
        data = await embed_texts(self._require_embedder(), [t.content for t in missing])
        by_seq = dict(zip((t.seq for t in missing), data, strict=True))
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            try:
                conversation = await repo.get(
                    tenant_id=history.tenant_id, conversation_id=history.conversation_id
                )
            except NotFoundError:
                # erased meanwhile: nothing to store, and nothing to keep
                self._cache.evict(history.tenant_id, history.conversation_id)
                return history
            await repo.set_embeddings(conversation, by_seq)
        filled = history.with_embeddings(
            {seq: np.frombuffer(data, dtype="<f4") for seq, data in by_seq.items()}
        )
        self._cache.put(filled)
        return filled

    async def AppendTurns(
        self, request: context_pb2.AppendTurnsRequest, context: grpc.aio.ServicerContext
    ) -> context_pb2.AppendTurnsReply:
        _require_tenant(request.scope)
        roles, contents = [], []
        for turn in request.turns:
            if turn.role not in _ROLE_NAMES:
                raise InvalidArgumentError("every turn needs a role", field="turns.role")
            roles.append(_ROLE_NAMES[turn.role])
            contents.append(turn.content)
        vectors: list[bytes | None] = [None] * len(contents)
        if self._embedder is not None:
            vectors = list(await embed_texts(self._embedder, contents))
        turns = [
            NewTurn(role, content, self._count(content), vector)
            for role, content, vector in zip(roles, contents, vectors, strict=True)
        ]
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            conversation = await repo.get(
                tenant_id=request.scope.tenant_id, conversation_id=request.scope.conversation_id
            )
            total = await repo.append(
                conversation, turns, request_id=request.request_id, now=self._now()
            )
        return context_pb2.AppendTurnsReply(turns_total=total)

    async def GetConversation(
        self, request: context_pb2.ConversationRef, context: grpc.aio.ServicerContext
    ) -> context_pb2.Conversation:
        _require_tenant(request.scope)
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            row = await repo.get(
                tenant_id=request.scope.tenant_id, conversation_id=request.scope.conversation_id
            )
            turns = []
            for t in await repo.turns(row, since_reset=False):
                turn = context_pb2.Turn(
                    role=_ROLES.get(t.role, common_pb2.ROLE_UNSPECIFIED),
                    content=t.content,
                    tokens=t.tokens,
                    request_id=t.request_id or "",
                    seq=t.seq,
                )
                turn.created_at.FromDatetime(t.created_at)
                turns.append(turn)
            return _conversation_message(row, turns)

    async def ResetConversation(
        self, request: context_pb2.ConversationRef, context: grpc.aio.ServicerContext
    ) -> context_pb2.Conversation:
        _require_tenant(request.scope)
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            row = await repo.get(
                tenant_id=request.scope.tenant_id, conversation_id=request.scope.conversation_id
            )
            await repo.reset(row, now=self._now())
            self._cache.evict(request.scope.tenant_id, row.id)
            return _conversation_message(row, [])

    async def DeleteConversation(
        self, request: context_pb2.ConversationRef, context: grpc.aio.ServicerContext
    ) -> context_pb2.DeleteConversationReply:
        """Erase the conversation: its turns, summary and embeddings, and its cached answers.

        The cache is told first (inside the transaction): if that fails nothing is deleted
        and the caller can try again, rather than the rows going while cached answers stay.
        """
        scope = request.scope
        _require_tenant(scope)
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            row = await repo.get(tenant_id=scope.tenant_id, conversation_id=scope.conversation_id)
            if self._bus is not None:
                await publish_event(
                    self._bus,
                    CACHE_INVALIDATE,
                    events_pb2.CacheInvalidate(
                        meta=new_event_meta("context"),
                        tenant_id=scope.tenant_id,
                        conversation_id=row.id,
                    ),
                )
            removed = await repo.delete(row)
            self._cache.evict(scope.tenant_id, row.id)
        self._cache.evict(scope.tenant_id, row.id)  # again: a build may have put it meanwhile
        if self._prompt_vectors is not None:
            self._prompt_vectors.forget_conversation(row.id)
        return context_pb2.DeleteConversationReply(turns_deleted=removed)
