"""gRPC adapter of the Context service, and its ``llm.completed`` consumer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.context.repository import ConversationRepository, NewTurn
from llmproxy.context.strategies import ContextPlan, ContextRequest, Strategy, plan_context
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.db.idempotency import claim_event
from llmproxy.platform.db.models import Conversation as ConversationRow
from llmproxy.platform.errors import InvalidArgumentError, NotFoundError
from llmproxy.platform.events import decode_event
from llmproxy.v1 import common_pb2, context_pb2, context_pb2_grpc, events_pb2

__all__ = ["ContextServicer", "TurnRecorder"]

CONSUMER = "context-turns"

_STRATEGIES = {
    common_pb2.CONTEXT_STRATEGY_UNSPECIFIED: Strategy.FULL,
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


def _require_tenant(scope: common_pb2.Scope) -> None:
    if not scope.tenant_id:
        raise InvalidArgumentError("scope.tenant_id is required", field="scope.tenant_id")


def _fingerprint(plan: ContextPlan) -> str:
    """Hash of everything sent before the new prompt (scopes cache entries to a context)."""
    digest = hashlib.sha256()
    for message in plan.messages[:-1]:
        digest.update(message.role.encode())
        digest.update(b"\x00")
        digest.update(message.content.encode())
        digest.update(b"\x01")
    return digest.hexdigest()


def _conversation_message(row: ConversationRow, turns: list[context_pb2.Turn]) -> context_pb2.Conversation:
    message = context_pb2.Conversation(
        scope=common_pb2.Scope(
            tenant_id=row.tenant_id, app_id=row.app_id, user_id=row.user_id or "", conversation_id=row.id
        ),
        turns=turns,
        summary=row.summary or "",
    )
    message.created_at.FromDatetime(row.created_at)
    if row.reset_at is not None:
        message.reset_at.FromDatetime(row.reset_at)
    return message


class ContextServicer(context_pb2_grpc.ContextServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        count_tokens: Callable[[str], int],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._count = count_tokens
        self._now = clock

    async def BuildContext(  # noqa: N802
        self, request: context_pb2.BuildContextRequest, context: grpc.aio.ServicerContext
    ) -> context_pb2.BuildContextReply:
        scope = request.scope
        _require_tenant(scope)
        policy = request.policy
        strategy = _STRATEGIES.get(policy.strategy)
        if strategy is None:
            raise InvalidArgumentError(
                f"unknown context strategy {policy.strategy}", field="context.strategy"
            )
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            if scope.conversation_id:
                conversation = await repo.get(
                    tenant_id=scope.tenant_id, conversation_id=scope.conversation_id
                )
            else:
                conversation = await repo.create(
                    tenant_id=scope.tenant_id,
                    app_id=scope.app_id,
                    user_id=scope.user_id,
                    now=self._now(),
                )
            history = await repo.history(conversation)
            conversation_id = conversation.id
        plan = plan_context(
            ContextRequest(
                strategy=strategy,
                system_prompt=request.system_prompt,
                prompt=request.prompt,
                history=history,
                k=policy.k,
                token_budget=policy.token_budget,
                reject_oversized_turn=policy.reject_oversized_turn,
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
            ),
            context_fingerprint=_fingerprint(plan),
            conversation_id=conversation_id,
        )

    async def AppendTurns(  # noqa: N802
        self, request: context_pb2.AppendTurnsRequest, context: grpc.aio.ServicerContext
    ) -> context_pb2.AppendTurnsReply:
        _require_tenant(request.scope)
        turns = []
        for turn in request.turns:
            if turn.role not in _ROLE_NAMES:
                raise InvalidArgumentError("every turn needs a role", field="turns.role")
            turns.append(NewTurn(_ROLE_NAMES[turn.role], turn.content, self._count(turn.content)))
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            conversation = await repo.get(
                tenant_id=request.scope.tenant_id, conversation_id=request.scope.conversation_id
            )
            total = await repo.append(
                conversation, turns, request_id=request.request_id, now=self._now()
            )
        return context_pb2.AppendTurnsReply(turns_total=total)

    async def GetConversation(  # noqa: N802
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

    async def ResetConversation(  # noqa: N802
        self, request: context_pb2.ConversationRef, context: grpc.aio.ServicerContext
    ) -> context_pb2.Conversation:
        _require_tenant(request.scope)
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            row = await repo.get(
                tenant_id=request.scope.tenant_id, conversation_id=request.scope.conversation_id
            )
            await repo.reset(row, now=self._now())
            return _conversation_message(row, [])

    async def DeleteConversation(  # noqa: N802
        self, request: context_pb2.ConversationRef, context: grpc.aio.ServicerContext
    ) -> context_pb2.DeleteConversationReply:
        _require_tenant(request.scope)
        async with self._sessions.begin() as session:
            repo = ConversationRepository(session)
            row = await repo.get(
                tenant_id=request.scope.tenant_id, conversation_id=request.scope.conversation_id
            )
            removed = await repo.delete(row)
        return context_pb2.DeleteConversationReply(turns_deleted=removed)


class TurnRecorder:
    """Appends each answered request's user turn and answer to its conversation."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], count_tokens: Callable[[str], int]
    ) -> None:
        self._sessions = sessions
        self._count = count_tokens

    async def __call__(self, envelope: Envelope) -> None:
        event = decode_event(envelope, events_pb2.LlmCompleted)
        scope = event.scope
        if event.error or not event.user_prompt or not scope.conversation_id:
            return  # failed, or stateless: nothing to remember
        occurred = event.meta.occurred_at.ToDatetime(UTC)
        turns = [
            NewTurn("user", event.user_prompt, self._count(event.user_prompt)),
            NewTurn("assistant", event.answer, event.usage.output_tokens or self._count(event.answer)),
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
