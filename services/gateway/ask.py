"""The request path: context → model → provider → reply → ``llm.completed``.

An adapter layer: it talks to the context service, the provider and the bus, and asks the
pure core (``core.py``) for every decision.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from prometheus_client import Counter

from llmproxy.gateway.catalog import Catalog, ModelSpec
from llmproxy.gateway.core import Choice, choose_model, price_answer, validate_prompt
from llmproxy.gateway.providers.port import ChatMessage, ChatRequest, ChatResult, Provider
from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.errors import LLMProxyError, UnavailableError
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.v1 import common_pb2, context_pb2, events_pb2, gateway_pb2

__all__ = ["AskFlow", "Caller", "ContextPort"]

log = structlog.get_logger(__name__)

TOKENS = Counter("llmproxy_tokens_total", "Tokens through the gateway", ["model", "direction"])
SPEND = Counter("llmproxy_cost_nanousd_total", "Spend in nano-USD", ["model"])
PUBLISH_FAILURES = Counter("llmproxy_event_publish_failures_total", "Events not published", ["subject"])

_ROLE_NAMES = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
    common_pb2.ROLE_TOOL: "tool",
}


class ContextPort(Protocol):
    async def build(self, request: context_pb2.BuildContextRequest) -> context_pb2.BuildContextReply: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking (from authentication)."""

    tenant_id: str
    app_id: str


@dataclass(slots=True)
class _Prepared:
    request_id: str
    scope: common_pb2.Scope
    choice: Choice
    messages: list[common_pb2.Message]
    context: common_pb2.ContextReport
    chat: ChatRequest
    accepted_at: datetime


class AskFlow:
    def __init__(
        self,
        *,
        catalog: Catalog,
        providers: Mapping[str, Provider],
        context: ContextPort,
        bus: EventBus,
        source: str = "gateway",
        provider_timeout_s: float = 60.0,
    ) -> None:
        self._catalog = catalog
        self._providers = providers
        self._context = context
        self._bus = bus
        self._source = source
        self._timeout = provider_timeout_s
        self._background: set[asyncio.Task[None]] = set()

    def provider_for(self, model: ModelSpec) -> Provider:
        provider = self._providers.get(model.name)
        if provider is None:
            raise UnavailableError(f"no provider is configured for model {model.name!r}")
        return provider

    async def _prepare(self, request: gateway_pb2.AskRequest, caller: Caller) -> _Prepared:
        validate_prompt(request.prompt, len(request.messages))
        scope = common_pb2.Scope()
        scope.CopyFrom(request.scope)
        scope.tenant_id, scope.app_id = caller.tenant_id, caller.app_id
        prefs = request.preferences
        choice = choose_model(
            self._catalog, pinned=prefs.pinned_model, allowed=tuple(prefs.allowed_models)
        )
        accepted_at = datetime.now(UTC)
        if request.messages:
            messages = list(request.messages)
            if request.system_prompt:
                messages.insert(
                    0, common_pb2.Message(role=common_pb2.ROLE_SYSTEM, content=request.system_prompt)
                )
            context = common_pb2.ContextReport(
                strategy=common_pb2.CONTEXT_STRATEGY_NONE,
                turns_sent=len(messages),
                turns_total=len(messages),
            )
        else:
            built = await self._context.build(
                context_pb2.BuildContextRequest(
                    scope=scope,
                    system_prompt=request.system_prompt,
                    prompt=request.prompt,
                    policy=request.context,
                    model=choice.model.name,
                    context_window=choice.model.context_window,
                )
            )
            scope.conversation_id = built.conversation_id
            messages, context = list(built.messages), built.report
        gen = request.generation
        chat = ChatRequest(
            model=choice.model.provider_model,
            messages=tuple(
                ChatMessage(_ROLE_NAMES.get(m.role, "user"), m.content) for m in messages
            ),
            max_tokens=gen.max_tokens or None,
            temperature=gen.temperature if gen.has_temperature else None,
            top_p=gen.top_p if gen.has_top_p else None,
            stop=tuple(gen.stop),
            seed=gen.seed or None,
            timeout_s=self._timeout,
        )
        return _Prepared(
            request_id=request.request_id or str(uuid.uuid4()),
            scope=scope,
            choice=choice,
            messages=messages,
            context=context,
            chat=chat,
            accepted_at=accepted_at,
        )

    async def ask(self, request: gateway_pb2.AskRequest, caller: Caller) -> gateway_pb2.AskReply:
        prepared = await self._prepare(request, caller)
        try:
            result = await self.provider_for(prepared.choice.model).complete(prepared.chat)
        except LLMProxyError as exc:
            self._publish_in_background(self._failure_event(prepared, request, exc))
            raise
        reply = self._reply(prepared, result)
        self._publish_in_background(self._completed_event(prepared, request, reply))
        return reply

    async def ask_stream(
        self, request: gateway_pb2.AskRequest, caller: Caller
    ) -> AsyncIterator[gateway_pb2.AskChunk]:
        prepared = await self._prepare(request, caller)
        choice = self._choice_message(prepared.choice)
        eta = common_pb2.Eta()
        eta.accepted_at.FromDatetime(prepared.accepted_at)
        yield gateway_pb2.AskChunk(
            accepted=gateway_pb2.AskAccepted(
                request_id=prepared.request_id,
                choice=choice,
                eta=eta,
                cache=common_pb2.CacheReport(outcome=common_pb2.CACHE_OUTCOME_BYPASSED),
            )
        )
        result: ChatResult | None = None
        try:
            async for event in self.provider_for(prepared.choice.model).stream(prepared.chat):
                if event.result is not None:
                    result = event.result
                elif event.delta:
                    yield gateway_pb2.AskChunk(delta=event.delta)
        except LLMProxyError as exc:
            self._publish_in_background(self._failure_event(prepared, request, exc))
            raise
        assert result is not None  # the provider port always ends with a result
        reply = self._reply(prepared, result)
        self._publish_in_background(self._completed_event(prepared, request, reply))
        yield gateway_pb2.AskChunk(final=reply)

    # -- replies and events ---------------------------------------------------------------

    @staticmethod
    def _choice_message(choice: Choice) -> common_pb2.ModelChoice:
        return common_pb2.ModelChoice(
            provider=choice.model.provider,
            model=choice.model.name,
            policy=choice.policy,
            reason=choice.reason,
        )

    def _reply(self, prepared: _Prepared, result: ChatResult) -> gateway_pb2.AskReply:
        model = prepared.choice.model
        pricing = price_answer(
            self._catalog,
            model,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cached_input_tokens=result.cached_input_tokens,
        )
        TOKENS.labels(model.name, "input").inc(result.input_tokens)
        TOKENS.labels(model.name, "output").inc(result.output_tokens)
        SPEND.labels(model.name).inc(pricing.cost_nanousd)
        reply = gateway_pb2.AskReply(
            request_id=prepared.request_id,
            answer=result.text,
            finish_reason=result.finish_reason,
            choice=self._choice_message(prepared.choice),
            usage=common_pb2.TokenUsage(
                input_tokens=result.input_tokens,
                cached_input_tokens=result.cached_input_tokens,
                output_tokens=result.output_tokens,
            ),
            cost=common_pb2.Cost(
                cost_nanousd=pricing.cost_nanousd,
                reference_cost_nanousd=pricing.reference_cost_nanousd,
                saved_nanousd=pricing.saved_nanousd,
                reference_model=pricing.reference_model,
            ),
            cache=common_pb2.CacheReport(outcome=common_pb2.CACHE_OUTCOME_BYPASSED),
            context=prepared.context,
            conversation_id=prepared.scope.conversation_id,
        )
        reply.latency.FromNanoseconds(int(result.latency_s * 1e9))
        reply.time_to_first_token.FromNanoseconds(int(result.time_to_first_token_s * 1e9))
        reply.eta.accepted_at.FromDatetime(prepared.accepted_at)
        reply.eta.actual_completion.FromDatetime(datetime.now(UTC))
        return reply

    def _base_event(
        self, prepared: _Prepared, request: gateway_pb2.AskRequest
    ) -> events_pb2.LlmCompleted:
        event = events_pb2.LlmCompleted(
            meta=new_event_meta(self._source),
            request_id=prepared.request_id,
            scope=prepared.scope,
            choice=self._choice_message(prepared.choice),
            context=prepared.context,
            task_category=request.task_category,
            cache_policy=request.cache,
            user_prompt=request.prompt,
            system_prompt=request.system_prompt,
        )
        event.prompt.extend(prepared.messages)
        return event

    def _completed_event(
        self, prepared: _Prepared, request: gateway_pb2.AskRequest, reply: gateway_pb2.AskReply
    ) -> events_pb2.LlmCompleted:
        event = self._base_event(prepared, request)
        event.usage.CopyFrom(reply.usage)
        event.cost.CopyFrom(reply.cost)
        event.cache.CopyFrom(reply.cache)
        event.latency.CopyFrom(reply.latency)
        event.time_to_first_token.CopyFrom(reply.time_to_first_token)
        event.eta.CopyFrom(reply.eta)
        event.answer = reply.answer
        event.finish_reason = reply.finish_reason
        return event

    def _failure_event(
        self, prepared: _Prepared, request: gateway_pb2.AskRequest, error: LLMProxyError
    ) -> events_pb2.LlmCompleted:
        event = self._base_event(prepared, request)
        event.error = True
        event.error_message = error.message
        return event

    def _publish_in_background(self, event: events_pb2.LlmCompleted) -> None:
        # The caller has their answer; recording it must not add to their latency. The
        # bus adapter retries through reconnects; a failure is counted and logged.
        task = asyncio.create_task(self._publish(event))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(self, event: events_pb2.LlmCompleted) -> None:
        try:
            await publish_event(self._bus, LLM_COMPLETED, event)
        except Exception:
            PUBLISH_FAILURES.labels(LLM_COMPLETED).inc()
            log.exception("could not publish llm.completed", request_id=event.request_id)

    async def drain(self) -> None:
        """Wait for events still being published (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
