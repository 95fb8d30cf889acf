"""The rolling summary's adapters: the model that writes it and the background refresher.

The summary is written by the cheapest model of the catalog (the local SmolLM2 in the
embedded stack, which costs nothing), through the same OpenAI-compatible provider adapter
the gateway uses. It is refreshed after replies, in the background: a reply's
``llm.completed`` wakes the refresher, which folds older turns into the summary while the
next request is already free to use the previous one. Each summariser call is recorded as
an ``llm.completed`` of its own (``task_category="context-summary"``, no user prompt, so no
turn is appended for it), so the profiler counts its tokens and spend against the tenant.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.context.repository import ConversationRepository
from llmproxy.context.strategies import PlannedMessage
from llmproxy.context.summary import SummaryPolicy, plan_summary_refresh
from llmproxy.gateway.catalog import Catalog, ModelSpec
from llmproxy.gateway.providers.port import ChatMessage, ChatRequest, Provider
from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.errors import LLMProxyError, NotFoundError
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.v1 import common_pb2, events_pb2

__all__ = [
    "SUMMARY_TASK",
    "ProviderSummaryModel",
    "SummaryAnswer",
    "SummaryModel",
    "SummaryRefresher",
    "cheapest_model",
]

log = structlog.get_logger(__name__)

#: ``task_category`` of the ``llm.completed`` that records a summariser call
SUMMARY_TASK = "context-summary"
#: folds per wake-up at most (a long backlog is finished by later replies)
_MAX_FOLDS_PER_RUN = 16


@dataclass(frozen=True, slots=True)
class SummaryAnswer:
    """What the summariser wrote, and what writing it cost."""

    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_nanousd: int
    latency_s: float = 0.0


class SummaryModel(Protocol):
    """Port: the model that writes summaries."""

    async def summarize(
        self, messages: Sequence[PlannedMessage], *, max_tokens: int
    ) -> SummaryAnswer: ...


def cheapest_model(catalog: Catalog, *, pinned: str | None = None) -> ModelSpec:
    """``pinned`` if given, else the available model with the lowest price (first listed wins)."""
    if pinned:
        return catalog.get(pinned)
    return min(catalog.available(), key=lambda m: m.price.input + m.price.output)


class ProviderSummaryModel:
    """A catalog model behind a provider adapter, priced from the catalog."""

    def __init__(self, model: ModelSpec, provider: Provider, *, timeout: timedelta) -> None:
        self.model = model
        self._provider = provider
        self._timeout = timeout

    async def summarize(
        self, messages: Sequence[PlannedMessage], *, max_tokens: int
    ) -> SummaryAnswer:
        result = await self._provider.complete(
            ChatRequest(
                model=self.model.provider_model,
                messages=tuple(ChatMessage(m.role, m.content) for m in messages),
                max_tokens=max_tokens,
                temperature=0.0,
                timeout_s=self._timeout.total_seconds(),
            )
        )
        return SummaryAnswer(
            text=result.text.strip(),
            provider=self.model.provider,
            model=self.model.name,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_nanousd=self.model.price.cost_nanousd(
                result.input_tokens, result.output_tokens, result.cached_input_tokens
            ),
            latency_s=result.latency_s,
        )


class SummaryRefresher:
    """Folds older turns into conversations' summaries, off the request path.

    :meth:`request` schedules a refresh and returns at once; one refresh per conversation
    runs at a time (a request during one makes it run again after), and at most
    ``concurrency`` model calls are in flight. :meth:`refresh` runs one now (tests, tools).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        model: SummaryModel,
        *,
        policy: SummaryPolicy,
        count_tokens: Callable[[str], int],
        bus: EventBus | None = None,
        concurrency: int = 1,
    ) -> None:
        self._sessions = sessions
        self._model = model
        self._policy = policy
        self._count = count_tokens
        self._bus = bus
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._again: set[tuple[str, str]] = set()

    def request(self, tenant_id: str, conversation_id: str) -> None:
        """Refresh the conversation's summary soon, in the background."""
        key = (tenant_id, conversation_id)
        if key in self._running:
            self._again.add(key)
            return
        task = asyncio.create_task(self._run(key))
        self._running[key] = task

    async def _run(self, key: tuple[str, str]) -> None:
        try:
            while True:
                self._again.discard(key)
                try:
                    await self.refresh(*key)
                except Exception:
                    log.exception("summary refresh failed", conversation_id=key[1])
                if key not in self._again:
                    return
        finally:
            self._running.pop(key, None)

    async def drain(self) -> None:
        """Wait until no refresh is running or scheduled."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop at shutdown without waiting for the model: a cut refresh is redone after
        the conversation's next reply (the summary state only advances on success)."""
        for task in list(self._running.values()):
            task.cancel()
        await self.drain()

    async def refresh(self, tenant_id: str, conversation_id: str) -> int:
        """Fold what is due into the summary now; returns the number of summariser calls kept."""
        folds = 0
        for _ in range(_MAX_FOLDS_PER_RUN):
            async with self._sessions.begin() as session:
                repo = ConversationRepository(session)
                try:
                    conversation = await repo.get(
                        tenant_id=tenant_id, conversation_id=conversation_id
                    )
                except NotFoundError:
                    return folds  # erased: nothing to summarise, ever
                history = await repo.history(conversation)
                scope = common_pb2.Scope(
                    tenant_id=tenant_id,
                    app_id=conversation.app_id,
                    user_id=conversation.user_id or "",
                    conversation_id=conversation_id,
                )
                summary, reset_at = conversation.summary or "", conversation.reset_at
                job = plan_summary_refresh(
                    history,
                    summary=summary,
                    summary_upto_seq=conversation.summary_upto_seq or 0,
                    policy=self._policy,
                    count_tokens=self._count,
                )
            if job is None:
                return folds
            async with self._slots:
                try:
                    answer = await self._model.summarize(
                        job.messages, max_tokens=self._policy.max_summary_tokens
                    )
                except LLMProxyError as exc:
                    log.warning(
                        "summariser failed", conversation_id=conversation_id, error=exc.message
                    )
                    return folds
            await self._record_spend(scope, answer)
            if not answer.text:
                log.warning("summariser wrote nothing", conversation_id=conversation_id)
                return folds
            async with self._sessions.begin() as session:
                saved = await ConversationRepository(session).save_summary(
                    tenant_id=tenant_id,
                    conversation_id=conversation_id,
                    summary=answer.text,
                    upto_seq=job.upto_seq,
                    expected_upto_seq=job.from_upto_seq,
                    expected_reset_at=reset_at,
                )
            if not saved:
                return folds  # erased, reset or refreshed by another replica meanwhile
            folds += 1
        return folds

    async def _record_spend(self, scope: common_pb2.Scope, answer: SummaryAnswer) -> None:
        if self._bus is None:
            return
        event = events_pb2.LlmCompleted(
            meta=new_event_meta("context"),
            request_id=f"summary-{uuid.uuid4()}",
            scope=scope,
            choice=common_pb2.ModelChoice(
                provider=answer.provider,
                model=answer.model,
                policy=SUMMARY_TASK,
                reason="rolling summary of older turns (cheapest model)",
            ),
            usage=common_pb2.TokenUsage(
                input_tokens=answer.input_tokens, output_tokens=answer.output_tokens
            ),
            cost=common_pb2.Cost(cost_nanousd=answer.cost_nanousd),
            task_category=SUMMARY_TASK,
            finish_reason="stop",
        )
        event.latency.FromTimedelta(timedelta(seconds=answer.latency_s))
        try:
            await publish_event(self._bus, LLM_COMPLETED, event)
        except Exception:
            log.exception("could not record the summary's spend", scope=str(scope))
