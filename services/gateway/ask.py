"""The request path: validate → reserve → context → provider (retries, fallback) → reply →
settle → ``llm.completed``.

An adapter layer: it talks to the context service, the limit store, the provider and the
bus, and asks the pure modules (``core.py``, ``limits.py``) for every decision. Nothing is
spent before the request is valid and its estimate is reserved; every request that
reached a provider lands in the ledger exactly once, answered or failed.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from prometheus_client import Counter, Histogram

from llmproxy.context.fingerprint import context_fingerprint
from llmproxy.gateway.access import Caller
from llmproxy.gateway.catalog import Catalog, ModelSpec
from llmproxy.gateway.core import (
    TOKENS_PER_MESSAGE,
    QuoteLine,
    backoff_delays,
    check_context_window,
    estimate_request,
    fallback_chain,
    output_budget,
    validate_messages,
    validate_prompt,
)
from llmproxy.gateway.keys import SCOPE_CHAT
from llmproxy.gateway.limits import METRIC_REQUESTS, Amounts
from llmproxy.gateway.providers.port import ChatMessage, ChatRequest, ChatResult, Provider
from llmproxy.gateway.queueing import Admission, RequestQueues, predicted_output_tokens
from llmproxy.gateway.replies import (
    Prepared,
    actual_amounts,
    cached_reply,
    choice_message,
    completed_event,
    eta_for,
    failure_event,
    quote_option,
    reply_for,
)
from llmproxy.gateway.reservations import LimitGuard, Reservation
from llmproxy.gateway.selection import (
    ModelProfile,
    NoEligibleModelError,
    RouterAdvice,
    Selection,
    Weights,
    answer_needs_escalation,
    select_model,
)
from llmproxy.gateway.selection import Preferences as SelectionPreferences
from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    LLMProxyError,
    ProviderError,
)
from llmproxy.platform.events import publish_event
from llmproxy.platform.tokens import count_tokens
from llmproxy.platform.tracing import provider_span
from llmproxy.v1 import cache_pb2, common_pb2, context_pb2, events_pb2, gateway_pb2

__all__ = ["AskFlow", "CachePort", "Caller", "ContextPort", "RetryPolicy"]

log = structlog.get_logger(__name__)

TOKENS = Counter("llmproxy_tokens_total", "Tokens through the gateway", ["model", "direction"])
SPEND = Counter("llmproxy_cost_nanousd_total", "Spend in nano-USD", ["model"])
PUBLISH_FAILURES = Counter(
    "llmproxy_event_publish_failures_total", "Events not published", ["subject"]
)
RETRIES = Counter("llmproxy_provider_retries_total", "Provider calls retried", ["model"])
FALLBACKS = Counter("llmproxy_provider_fallbacks_total", "Requests that fell back", ["from_model"])
CACHE_HITS = Counter("llmproxy_cache_hits_total", "Requests answered from the cache", ["kind"])
# Both front doors (gRPC and HTTP) go through AskFlow, so these count every request that
# got past validation; outcome = answered | cache_hit | failed.
ASKS = Counter("llmproxy_ask_requests_total", "Requests answered or failed", ["outcome"])
ASK_SECONDS = Histogram(
    "llmproxy_ask_seconds",
    "Time from accepting a request to its full answer (or failure)",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
SAVED = Counter(
    "llmproxy_saved_nanousd_total", "Saved vs the reference model (gains only), nano-USD", ["model"]
)
TOKENS_SAVED = Counter(
    "llmproxy_tokens_saved_total",
    "Tokens not sent to a provider: history the context strategy left out, or a cached answer",
    ["source"],
)
CACHE_LOOKUPS = Counter(
    "llmproxy_cache_lookups_total", "Cache lookups by outcome (exact_hit, miss...)", ["outcome"]
)


def _observe(reply: gateway_pb2.AskReply, outcome: str) -> None:
    """The request, latency, saving and tokens-saved metrics of one answer."""
    ASKS.labels(outcome).inc()
    ASK_SECONDS.labels(outcome).observe(reply.latency.ToNanoseconds() / 1e9)
    SAVED.labels(reply.choice.model).inc(max(0, reply.cost.saved_nanousd))
    if outcome == "cache_hit":
        TOKENS_SAVED.labels("cache").inc(reply.usage.input_tokens + reply.usage.output_tokens)
    else:
        left_out = reply.context.tokens_full_history - reply.context.tokens_sent
        TOKENS_SAVED.labels("context").inc(max(0, left_out))


def _observe_failure(prepared: Prepared) -> None:
    ASKS.labels("failed").inc()
    ASK_SECONDS.labels("failed").observe(
        (datetime.now(UTC) - prepared.accepted_at).total_seconds()
    )

_ROLE_NAMES = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
    common_pb2.ROLE_TOOL: "tool",
}
#: recent requests kept for Feedback (tenant check, escalation), per replica
_RECENT = 10_000


class CachePort(Protocol):
    """The cache service as the request path needs it."""

    async def lookup(self, request: cache_pb2.CacheLookupRequest) -> cache_pb2.CacheLookupReply: ...


_HITS = (common_pb2.CACHE_OUTCOME_EXACT_HIT, common_pb2.CACHE_OUTCOME_SEMANTIC_HIT)


class ContextPort(Protocol):
    """The context service as the request path needs it."""

    async def build(
        self, request: context_pb2.BuildContextRequest
    ) -> context_pb2.BuildContextReply: ...


class RouterPort(Protocol):
    """The active router (``optimizer.router.live.LiveRouter`` in the product)."""

    async def advise(self, prompt: str) -> RouterAdvice | None: ...


class ProfilesPort(Protocol):
    """The latest model profiles (``profiler.live.LiveProfiles`` in the product)."""

    def profiles(self) -> Mapping[str, ModelProfile]: ...


_OBJECTIVE_NAMES = {
    common_pb2.OBJECTIVE_COST: "cost",
    common_pb2.OBJECTIVE_BALANCED: "balanced",
    common_pb2.OBJECTIVE_QUALITY: "quality",
    common_pb2.OBJECTIVE_LATENCY: "latency",
}


def _selection_preferences(prefs: common_pb2.Preferences) -> SelectionPreferences:
    w = prefs.weights
    deadline = prefs.deadline.ToTimedelta().total_seconds() if prefs.HasField("deadline") else 0
    return SelectionPreferences(
        objective=_OBJECTIVE_NAMES.get(prefs.objective, ""),
        weights=Weights(w.cost, w.latency, w.quality) if prefs.HasField("weights") else None,
        max_cost_nanousd=prefs.max_cost_nanousd,
        deadline_s=deadline,
        pinned=prefs.pinned_model,
        allowed=tuple(prefs.allowed_models),
        allow_cascade=prefs.allow_cascade,
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of one model on retryable errors, before falling back to the next."""

    #: retries after the first attempt
    retries: int = 2
    base_delay_s: float = 0.2
    max_delay_s: float = 2.0


@dataclass(frozen=True, slots=True)
class _Escalation:
    """A cascade's second call, decided and reserved; the cheap call is already billed."""

    #: the cheap model's reply (its call settled and recorded)
    first: gateway_pb2.AskReply
    #: why the cheap answer was not kept ("<policy>: <model> answered but <check>")
    verdict: str
    #: the call to the stronger model
    second: Prepared
    #: the second call's own reservation
    reservation: Reservation | None


@dataclass(frozen=True, slots=True)
class _Recent:
    tenant_id: str
    model: str
    request: gateway_pb2.AskRequest


def _queued_eta(eta: common_pb2.Eta, admission: Admission | None) -> None:
    """Put the queue's prediction (given before the wait) in a reply's ETA."""
    if admission is None:
        return
    predicted = admission.eta()
    eta.queued = True
    eta.ClearField("predicted_start")
    eta.ClearField("predicted_completion")
    if predicted.HasField("predicted_start"):
        eta.predicted_start.CopyFrom(predicted.predicted_start)
    if predicted.HasField("predicted_completion"):
        eta.predicted_completion.CopyFrom(predicted.predicted_completion)


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
        limits: LimitGuard | None = None,
        cache: CachePort | None = None,
        router: RouterPort | None = None,
        profiles: ProfilesPort | None = None,
        queues: RequestQueues | None = None,
        retry: RetryPolicy = RetryPolicy(),
        default_output_cap: int = 1024,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._catalog = catalog
        self._providers = providers
        self._context = context
        self._bus = bus
        self._source = source
        self._timeout = provider_timeout_s
        self._limits = limits
        self._cache = cache
        self._router = router
        self._profiles = profiles
        self._queues = queues
        self._retry = retry
        self._output_cap = default_output_cap
        self._sleep = sleep
        self._jitter = jitter
        self._background: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[str, _Recent] = OrderedDict()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    # -- deciding, before any spend ---------------------------------------------------------

    def _validate(self, request: gateway_pb2.AskRequest) -> None:
        validate_prompt(request.prompt, len(request.messages))
        if request.messages:
            validate_messages([m.content for m in request.messages])

    async def _select(self, request: gateway_pb2.AskRequest, caller: Caller) -> Selection:
        """The model for ``request`` — the one decision Ask and Quote share.

        Priced on the request's own texts (a conversation's history is not read here), so a
        quote and the ask that follows it see the same inputs. The prompt is embedded for
        the router only when a router is active and no model is pinned.
        """
        prefs = request.preferences
        texts = [request.system_prompt, request.prompt, *(m.content for m in request.messages)]
        advice = None
        if self._router is not None and not prefs.pinned_model:
            question = request.prompt or (request.messages[-1].content if request.messages else "")
            advice = await self._router.advise(question)
        return select_model(
            self._catalog,
            _selection_preferences(prefs),
            input_tokens=sum(count_tokens(t) + TOKENS_PER_MESSAGE for t in texts if t),
            max_tokens=request.generation.max_tokens or None,
            task_category=request.task_category,
            profiles=self._profiles.profiles() if self._profiles is not None else None,
            router=advice,
            reference_model=caller.reference_model,
        )

    async def _prepare(self, request: gateway_pb2.AskRequest, caller: Caller) -> Prepared:
        caller.require(SCOPE_CHAT)
        self._validate(request)
        scope = common_pb2.Scope()
        scope.CopyFrom(request.scope)
        scope.tenant_id, scope.app_id = caller.tenant_id, caller.app_id
        prefs = request.preferences
        allowed = tuple(prefs.allowed_models)
        choice = await self._select(request, caller)
        gen = request.generation
        if gen.max_tokens < 0:
            raise InvalidArgumentError(
                f"max_tokens must be >= 1, got {gen.max_tokens}", field="max_tokens"
            )
        accepted_at = datetime.now(UTC)
        if request.messages:
            messages = list(request.messages)
            if request.system_prompt:
                messages.insert(
                    0,
                    common_pb2.Message(role=common_pb2.ROLE_SYSTEM, content=request.system_prompt),
                )
            context = common_pb2.ContextReport(
                strategy=common_pb2.CONTEXT_STRATEGY_NONE,
                turns_sent=len(messages),
                turns_total=len(messages),
            )
            # System messages included: two apps' instructions never share entries.
            fingerprint = context_fingerprint(
                (_ROLE_NAMES.get(m.role, "user"), m.content) for m in request.messages[:-1]
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
                    # the answer's room: what was asked, else a quarter of the window
                    max_output_tokens=gen.max_tokens
                    or min(self._output_cap, choice.model.context_window // 4),
                )
            )
            scope.conversation_id = built.conversation_id
            messages, context = list(built.messages), built.report
            fingerprint = built.context_fingerprint
        input_tokens = sum(count_tokens(m.content) + TOKENS_PER_MESSAGE for m in messages)
        if request.messages:
            context.tokens_sent = context.tokens_full_history = input_tokens
        check_context_window(choice.model, input_tokens, gen.max_tokens or None)
        budget = output_budget(choice.model, input_tokens, gen.max_tokens or None, self._output_cap)
        rules = await self._limits.rules_for(caller.who(scope.user_id)) if self._limits else ()
        # With a money or token limit the provider is told the output budget, so the
        # reservation bounds what the answer can cost; without one the caller's request
        # goes through unchanged.
        bounded = any(r.metric != METRIC_REQUESTS for r in rules)
        max_tokens = gen.max_tokens or (budget if bounded else None)
        chat = ChatRequest(
            model=choice.model.provider_model,
            messages=tuple(
                ChatMessage(_ROLE_NAMES.get(m.role, "user"), m.content) for m in messages
            ),
            max_tokens=max_tokens,
            temperature=gen.temperature if gen.has_temperature else None,
            top_p=gen.top_p if gen.has_top_p else None,
            stop=tuple(gen.stop),
            seed=gen.seed or None,
            timeout_s=self._timeout,
        )
        return Prepared(
            request_id=request.request_id or str(uuid.uuid4()),
            request=request,
            caller=caller,
            scope=scope,
            choice=choice,
            messages=messages,
            context=context,
            chat=chat,
            accepted_at=accepted_at,
            input_tokens=input_tokens,
            output_budget=budget,
            estimate=estimate_request(choice.model, input_tokens, budget),
            chain=fallback_chain(
                self._catalog, choice, pinned=bool(prefs.pinned_model), allowed=allowed
            ),
            context_fingerprint=fingerprint,
        )

    async def _lookup(self, prepared: Prepared) -> cache_pb2.CacheLookupReply | None:
        """A cache hit for ``prepared``, or None (and the key to store its answer under).

        The cache saves money; it must never cost an answer: an unreachable or failing
        cache is a miss. Only a request the cache calls invalid is refused.
        """
        request = prepared.request
        if self._cache is None or request.cache.mode == common_pb2.CACHE_MODE_OFF:
            return None
        prompt = request.prompt or (request.messages[-1].content if request.messages else "")
        if request.messages and request.messages[-1].role != common_pb2.ROLE_USER:
            return None  # not a question: nothing to look up
        lookup = cache_pb2.CacheLookupRequest(
            key=cache_pb2.CacheScopeKey(
                scope=prepared.scope,
                model_class=prepared.choice.model.name,
                system_prompt=request.system_prompt,
                context_fingerprint=prepared.context_fingerprint,
                generation=request.generation,
            ),
            prompt=prompt,
            policy=request.cache,
        )
        try:
            found = await self._cache.lookup(lookup)
        except InvalidArgumentError:
            raise
        except LLMProxyError as exc:
            CACHE_LOOKUPS.labels("error").inc()
            log.warning("cache lookup failed; answering without it", error=exc.message)
            return None
        outcome = common_pb2.CacheOutcome.Name(found.report.outcome)
        CACHE_LOOKUPS.labels(outcome.removeprefix("CACHE_OUTCOME_").lower()).inc()
        prepared.cache = found.report
        if found.report.outcome in _HITS:
            return found
        prepared.cache_key = found.cache_key
        return None

    def _answer_from_cache(
        self, prepared: Prepared, hit: cache_pb2.CacheLookupReply, started: float
    ) -> gateway_pb2.AskReply:
        reply = cached_reply(self._catalog, prepared, hit, time.perf_counter() - started)
        CACHE_HITS.labels(common_pb2.CacheOutcome.Name(hit.report.outcome)).inc()
        _observe(reply, "cache_hit")
        self._publish(completed_event(prepared, reply, self._source))
        self._remember(prepared, reply.choice.model)
        return reply

    async def _reserve(self, prepared: Prepared) -> Reservation | None:
        if self._limits is None:
            return None
        who = prepared.caller.who(prepared.scope.user_id)
        return await self._limits.reserve(who, prepared.estimate, request_id=prepared.request_id)

    # -- asking -----------------------------------------------------------------------------

    async def ask(
        self,
        request: gateway_pb2.AskRequest,
        caller: Caller,
        on_eta: Callable[[common_pb2.Eta], Awaitable[None]] | None = None,
    ) -> gateway_pb2.AskReply:
        """Answer one request (raises LLMProxyError subclasses the boundaries map).

        A request to a capacity-limited model waits its turn in the model's queue first;
        ``on_eta`` hears the queue's ETA before the wait (gRPC sends it as metadata)."""
        started = time.perf_counter()
        prepared = await self._prepare(request, caller)
        hit = await self._lookup(prepared)
        if hit is not None:
            return self._answer_from_cache(prepared, hit, started)
        reservation = await self._reserve(prepared)
        admission: Admission | None = None
        try:
            admission = await self._admit(prepared)
            if admission is not None:
                if on_eta is not None:
                    await on_eta(admission.eta())
                await self._wait_turn(admission)
            result = await self._complete(prepared)
            await self._release(admission, failed=False)
        except BaseException as exc:
            message = exc.message if isinstance(exc, LLMProxyError) else "cancelled"
            self._fail(prepared, reservation, message)
            # last: it may wait on the scheduler (the bookkeeping above must not)
            await self._release(admission, failed=True, error=message)
            raise
        reply = reply_for(self._catalog, prepared, result)
        _queued_eta(reply.eta, admission)
        escalated = await self._cascade(prepared, reservation, result, reply)
        if escalated is not None:
            return escalated
        self._finish(prepared, reservation, result, reply)
        _observe(reply, "answered")
        return reply

    async def ask_stream(
        self, request: gateway_pb2.AskRequest, caller: Caller
    ) -> AsyncIterator[gateway_pb2.AskChunk]:
        """The accepted choice, then text deltas, then the full reply."""
        started = time.perf_counter()
        prepared = await self._prepare(request, caller)
        hit = await self._lookup(prepared)
        if hit is not None:
            reply = self._answer_from_cache(prepared, hit, started)
            yield gateway_pb2.AskChunk(
                accepted=gateway_pb2.AskAccepted(
                    request_id=prepared.request_id,
                    choice=reply.choice,
                    eta=reply.eta,
                    cache=reply.cache,
                )
            )
            yield gateway_pb2.AskChunk(delta=reply.answer)
            yield gateway_pb2.AskChunk(final=reply)
            return
        reservation = await self._reserve(prepared)
        parts: list[str] = []
        finished = False
        admission: Admission | None = None
        # a cascade's cheap answer is held back until it passes the answer check: once its
        # text went out, a stronger answer could not replace it
        hold = self._may_escalate(prepared)
        escalation: _Escalation | None = None
        try:
            # a capacity-limited model: the accepted message carries the queue's ETA, then
            # the request waits its turn
            admission = await self._admit(prepared)
            yield gateway_pb2.AskChunk(
                accepted=gateway_pb2.AskAccepted(
                    request_id=prepared.request_id,
                    choice=choice_message(prepared.choice),
                    eta=admission.eta() if admission is not None else eta_for(prepared),
                    cache=prepared.cache,
                )
            )
            if admission is not None:
                await self._wait_turn(admission)
            result: ChatResult | None = None
            async for event in self._stream(prepared, parts):
                if event.result is not None:
                    result = event.result
                elif event.delta and not hold:
                    yield gateway_pb2.AskChunk(delta=event.delta)
            assert result is not None  # the provider port always ends with a result
            await self._release(admission, failed=False)
            reply = reply_for(self._catalog, prepared, result)
            _queued_eta(reply.eta, admission)
            admission = None
            if hold:
                escalation = await self._escalate(prepared, reservation, result, reply)
            # from here the cheap call is billed (an escalation billed it and keeps the
            # second call's books itself)
            finished = True
            if escalation is None:
                self._finish(prepared, reservation, result, reply)
                _observe(reply, "answered")
                for delta in parts if hold else ():
                    yield gateway_pb2.AskChunk(delta=delta)
                yield gateway_pb2.AskChunk(final=reply)
        finally:
            if not finished:
                self._abandon(prepared, reservation, parts)
                await self._release(admission, failed=True, error="stream ended early")
        if escalation is not None:
            # closed with this stream, so a caller who leaves has the second call settled
            async with aclosing(self._stream_escalation(escalation, held=parts)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def _stream_escalation(
        self, escalation: _Escalation, held: list[str]
    ) -> AsyncGenerator[gateway_pb2.AskChunk, None]:
        """The stronger model's answer streamed live, then the reply for both calls.

        Should it fail before any of its text went out, the cheap answer (``held``, its
        deltas) stands, as in Ask."""
        second = escalation.second
        parts: list[str] = []
        finished = False
        admission: Admission | None = None
        try:
            try:
                admission = await self._admit(second)
                if admission is not None:
                    await self._wait_turn(admission)
                result: ChatResult | None = None
                async for event in self._stream(second, parts):
                    if event.result is not None:
                        result = event.result
                    elif event.delta:
                        yield gateway_pb2.AskChunk(delta=event.delta)
                assert result is not None  # the provider port always ends with a result
            except Exception as exc:
                if parts:
                    raise  # its text went out: the stream fails (and bills what it got)
                message = exc.message if isinstance(exc, LLMProxyError) else str(exc)
                first = self._escalation_failed(escalation, message)
                finished = True
                await self._release(admission, failed=True, error=message)
                for delta in held:
                    yield gateway_pb2.AskChunk(delta=delta)
                yield gateway_pb2.AskChunk(final=first)
                return
            await self._release(admission, failed=False)
            final = self._escalated(escalation, result)
            finished = True
            yield gateway_pb2.AskChunk(final=final)
        finally:
            if not finished:
                self._abandon(second, escalation.reservation, parts)
                await self._release(admission, failed=True, error="stream ended early")

    # -- queues of capacity-limited models ---------------------------------------------------

    async def _admit(self, prepared: Prepared) -> Admission | None:
        """Queue ``prepared`` when its model is capacity-limited (None: served at once)."""
        if self._queues is None:
            return None
        model = prepared.choice.model
        profiles = self._profiles.profiles() if self._profiles is not None else {}
        return await self._queues.admit(
            model,
            tenant=prepared.caller.tenant_id,
            request_id=prepared.request_id,
            output_tokens=predicted_output_tokens(
                prepared.request.generation.max_tokens or None, prepared.output_budget
            ),
            profile=profiles.get(model.name),
            accepted_at=prepared.accepted_at,
        )

    async def _wait_turn(self, admission: Admission) -> None:
        assert self._queues is not None
        await self._queues.wait_turn(admission)

    async def _release(
        self, admission: Admission | None, *, failed: bool, error: str = ""
    ) -> None:
        if admission is not None and self._queues is not None:
            try:
                await self._queues.done(admission, failed=failed, error=error[:200])
            except Exception:  # freeing a slot must never cost the caller the answer
                log.exception("could not release a queue slot", job=admission.ticket.job_id)

    # -- cascade: a weak cheap answer is asked again of the next model -----------------------

    @staticmethod
    def _may_escalate(prepared: Prepared) -> bool:
        """A cascade with a stronger model to ask: its cheap answer is checked first."""
        choice = prepared.choice
        return (
            isinstance(choice, Selection)
            and choice.policy.startswith("cascade:")
            and bool(choice.escalation)
        )

    async def _escalate(
        self,
        prepared: Prepared,
        reservation: Reservation | None,
        result: ChatResult,
        reply: gateway_pb2.AskReply,
    ) -> _Escalation | None:
        """When a cascade's cheap answer fails the answer check, the call to the next model.

        Both calls are billed: the cheap one is settled and recorded (``llm.completed``) as
        answered here, the second is reserved on its own (a limit that cannot take it keeps
        the cheap answer) and recorded under the same request id. None when there is
        nothing to escalate (the caller gets ``reply``; the cheap call is not finished).
        """
        if not self._may_escalate(prepared) or prepared.answered_by is not None:
            return None  # no cascade, nothing stronger is eligible, or a fallback answered
        assert isinstance(prepared.choice, Selection)
        choice = prepared.choice
        why = answer_needs_escalation(result.text, result.finish_reason)
        if not why:
            return None
        target = choice.escalation[0]
        estimate = estimate_request(target, prepared.input_tokens, prepared.output_budget)
        max_cost = prepared.request.preferences.max_cost_nanousd
        if (
            target.name not in self._providers
            or target.context_window <= prepared.input_tokens
            or (max_cost and reply.cost.cost_nanousd + estimate.cost_nanousd > max_cost)
        ):
            log.info("cascade: escalation not possible", model=target.name, check=why)
            return None
        extra: Reservation | None = None
        if self._limits is not None:
            who = prepared.caller.who(prepared.scope.user_id)
            try:
                extra = await self._limits.reserve(
                    who, estimate, request_id=prepared.request_id
                )
            except LLMProxyError as exc:
                log.info("cascade: the limits leave no room to escalate", error=exc.message)
                return None
        cache_key, prepared.cache_key = prepared.cache_key, ""  # never cache the weak answer
        self._finish(prepared, reservation, result, reply)
        option = next((o for o in choice.options if o.model.name == target.name), None)
        verdict = f"{choice.policy}: {choice.model.name} answered but {why}"
        second = replace(
            prepared,
            choice=replace(
                choice,
                model=target,
                reason=f"{verdict}; escalated to {target.name} (both calls billed)",
                escalated=True,
                predicted_quality=option.predicted_quality if option else target.quality,
                escalation=choice.escalation[1:],
            ),
            chat=replace(prepared.chat, model=target.provider_model),
            estimate=estimate,
            chain=(target,),
            answered_by=None,
            fallback_reason="",
            cache_key=cache_key,
        )
        return _Escalation(first=reply, verdict=verdict, second=second, reservation=extra)

    def _escalated(self, escalation: _Escalation, result: ChatResult) -> gateway_pb2.AskReply:
        """The stronger model answered: its call billed and recorded, the reply the sum."""
        first = escalation.first
        final = reply_for(self._catalog, escalation.second, result)
        self._finish(escalation.second, escalation.reservation, result, final)
        # the caller pays for both answers: the reply says so
        final.cost.cost_nanousd += first.cost.cost_nanousd
        final.cost.saved_nanousd = final.cost.reference_cost_nanousd - final.cost.cost_nanousd
        final.usage.input_tokens += first.usage.input_tokens
        final.usage.output_tokens += first.usage.output_tokens
        final.usage.cached_input_tokens += first.usage.cached_input_tokens
        final.latency.FromNanoseconds(first.latency.ToNanoseconds() + final.latency.ToNanoseconds())
        _observe(final, "answered")
        return final

    def _escalation_failed(self, escalation: _Escalation, message: str) -> gateway_pb2.AskReply:
        """The stronger model failed before any of its text went out: the cheap answer stands."""
        self._settle(escalation.reservation, Amounts(requests=1))
        self._publish(failure_event(self._catalog, escalation.second, message, self._source))
        first = escalation.first
        first.choice.reason = (
            f"{escalation.verdict}; escalating to {escalation.second.choice.model.name} "
            f"failed ({message}): the first answer stands"
        )
        _observe(first, "answered")
        return first

    async def _cascade(
        self,
        prepared: Prepared,
        reservation: Reservation | None,
        result: ChatResult,
        reply: gateway_pb2.AskReply,
    ) -> gateway_pb2.AskReply | None:
        """Ask's escalation (``_escalate``) run to its reply; None when there is none."""
        escalation = await self._escalate(prepared, reservation, result, reply)
        if escalation is None:
            return None
        second = escalation.second
        admission: Admission | None = None
        try:
            admission = await self._admit(second)
            if admission is not None:
                await self._wait_turn(admission)
            better = await self._complete(second)
            await self._release(admission, failed=False)
        except Exception as exc:
            message = exc.message if isinstance(exc, LLMProxyError) else str(exc)
            first = self._escalation_failed(escalation, message)
            await self._release(admission, failed=True, error=message)
            return first
        except BaseException:  # cancelled: the cheap call stays billed, the second is not
            self._fail(second, escalation.reservation, "cancelled")
            await self._release(admission, failed=True, error="cancelled")
            raise
        return self._escalated(escalation, better)

    def _abandon(
        self, prepared: Prepared, reservation: Reservation | None, parts: list[str]
    ) -> None:
        """A stream that failed or whose caller left: bill what was generated, release the rest."""
        partial = None
        if parts:
            text = "".join(parts)
            partial = ChatResult(
                text=text,
                finish_reason="aborted",
                input_tokens=prepared.input_tokens,
                output_tokens=count_tokens(text),
            )
        cost = reply_for(self._catalog, prepared, partial).cost.cost_nanousd if partial else 0
        _observe_failure(prepared)
        self._settle(reservation, actual_amounts(partial, cost) if partial else Amounts(requests=1))
        self._publish(
            failure_event(
                self._catalog, prepared, "stream ended early", self._source, partial=partial
            )
        )

    def _fail(self, prepared: Prepared, reservation: Reservation | None, message: str) -> None:
        """A call that produced nothing: nothing billed, the request counted as failed."""
        self._settle(reservation, Amounts(requests=1))
        _observe_failure(prepared)
        self._publish(failure_event(self._catalog, prepared, message, self._source))

    def _finish(
        self,
        prepared: Prepared,
        reservation: Reservation | None,
        result: ChatResult,
        reply: gateway_pb2.AskReply,
    ) -> None:
        """One provider call answered: its tokens and spend counted, settled and recorded.

        The request itself is observed (``_observe``) once, by whoever returns its reply: an
        escalated request makes two calls but is one ask."""
        model = reply.choice.model
        TOKENS.labels(model, "input").inc(result.input_tokens)
        TOKENS.labels(model, "output").inc(result.output_tokens)
        SPEND.labels(model).inc(reply.cost.cost_nanousd)
        self._settle(reservation, actual_amounts(result, reply.cost.cost_nanousd))
        self._publish(completed_event(prepared, reply, self._source))
        self._remember(prepared, model)

    # -- providers: retries and fallback ------------------------------------------------------

    def _attempts(self, prepared: Prepared) -> list[tuple[ModelSpec, Provider, float]]:
        """(model, provider, wait before) for every attempt, in order."""
        plan: list[tuple[ModelSpec, Provider, float]] = []
        for model in prepared.chain:
            provider = self._providers.get(model.name)
            if provider is None:
                continue
            delays = backoff_delays(
                self._retry.retries,
                base_s=self._retry.base_delay_s,
                cap_s=self._retry.max_delay_s,
                jitter=self._jitter,
            )
            plan.extend((model, provider, wait) for wait in [0.0, *delays])
        return plan

    async def _complete(self, prepared: Prepared) -> ChatResult:
        last: LLMProxyError = ProviderError(
            f"no provider is configured for model {prepared.choice.model.name!r}",
            provider=prepared.choice.model.provider,
        )
        skip: str | None = None
        for model, provider, wait in self._attempts(prepared):
            if model.name == skip:
                continue
            if not self._may_try(prepared, model):
                continue
            if wait:  # a retry of the same model (first attempts have no wait)
                RETRIES.labels(model.name).inc()
                await self._sleep(wait)
            try:
                with provider_span(model.name, model.provider):
                    result = await provider.complete(self._chat_for(prepared, model))
            except (ProviderError, DeadlineExceededError) as exc:
                last = exc
                if not (isinstance(exc, ProviderError) and exc.retryable):
                    skip = model.name  # not worth retrying this model: fall back at once
                continue
            self._answered_by(prepared, model, last)
            return result
        raise last

    async def _stream(self, prepared: Prepared, parts: list[str]) -> AsyncIterator[Any]:
        # Retries and fallbacks only until the first text has gone to the caller: after
        # that, switching answers mid-stream would garble it.
        last: LLMProxyError = ProviderError(
            f"no provider is configured for model {prepared.choice.model.name!r}",
            provider=prepared.choice.model.provider,
        )
        skip: str | None = None
        for model, provider, wait in self._attempts(prepared):
            if model.name == skip or not self._may_try(prepared, model):
                continue
            if wait:
                RETRIES.labels(model.name).inc()
                await self._sleep(wait)
            try:
                with provider_span(model.name, model.provider, streaming=True):
                    async for event in provider.stream(self._chat_for(prepared, model)):
                        if event.delta:
                            if not parts:
                                self._answered_by(prepared, model, last)
                            parts.append(event.delta)
                        elif event.result is not None and not parts:
                            self._answered_by(prepared, model, last)
                        yield event
                return
            except (ProviderError, DeadlineExceededError) as exc:
                if parts:
                    raise
                last = exc
                if not (isinstance(exc, ProviderError) and exc.retryable):
                    skip = model.name
        raise last

    def _may_try(self, prepared: Prepared, model: ModelSpec) -> bool:
        # A fallback priced above the reservation could break the budget guarantee; it is
        # skipped rather than reserved again mid-request.
        if model.name == prepared.choice.model.name:
            return True
        estimate = estimate_request(model, prepared.input_tokens, prepared.output_budget)
        if self._limits is not None and estimate.cost_nanousd > prepared.estimate.cost_nanousd:
            return False
        if model.context_window <= prepared.input_tokens:
            return False
        return True

    def _answered_by(self, prepared: Prepared, model: ModelSpec, last: LLMProxyError) -> None:
        if model.name != prepared.choice.model.name:
            FALLBACKS.labels(prepared.choice.model.name).inc()
            prepared.answered_by = model
            prepared.fallback_reason = (
                f"{prepared.choice.model.name} failed ({last.message}); fell back to {model.name}"
            )

    @staticmethod
    def _chat_for(prepared: Prepared, model: ModelSpec) -> ChatRequest:
        if model.name == prepared.choice.model.name:
            return prepared.chat
        return replace(prepared.chat, model=model.provider_model)

    # -- quote and feedback support ---------------------------------------------------------

    async def quote(
        self, request: gateway_pb2.AskRequest, caller: Caller
    ) -> gateway_pb2.QuoteReply:
        """Every model's estimated cost, latency and quality for ``request``; nothing is run.

        The prompt's tokens are counted here; an existing conversation's history is not
        read (that would need the context service), so its quote covers the new turn only.
        """
        caller.require(SCOPE_CHAT)
        self._validate(request)
        texts = [request.system_prompt, request.prompt, *(m.content for m in request.messages)]
        input_tokens = sum(count_tokens(t) + TOKENS_PER_MESSAGE for t in texts if t)
        # the very decision Ask makes (same function, same inputs); a request no model can
        # serve still gets every option, each with its reason, and none selected
        chosen: Selection | None
        try:
            chosen = await self._select(request, caller)
            candidates = chosen.options
        except NoEligibleModelError as exc:
            chosen, candidates = None, exc.options
        now = datetime.now(UTC)
        options = []
        for candidate in candidates:
            selected = chosen is not None and candidate.model.name == chosen.model.name
            line = QuoteLine(
                model=candidate.model,
                estimated_cost_nanousd=candidate.estimated_cost_nanousd,
                estimated_latency_s=candidate.estimated_latency_s,
                selected=selected,
                within_constraints=candidate.within_constraints,
                excluded_reason=candidate.excluded_reason,
            )
            option = quote_option(line, chosen.policy if chosen else "", now)
            option.choice.predicted_quality = candidate.predicted_quality
            option.estimated_saved_nanousd = candidate.saved_vs_reference_nanousd
            if chosen is not None:
                option.reference_model = chosen.reference_model
                if selected:
                    option.choice.reason = chosen.reason
                    option.choice.escalated = chosen.escalated
            options.append(option)
        return gateway_pb2.QuoteReply(
            options=options,
            cache=common_pb2.CacheReport(outcome=common_pb2.CACHE_OUTCOME_BYPASSED),
            context=common_pb2.ContextReport(
                strategy=common_pb2.CONTEXT_STRATEGY_NONE,
                tokens_sent=input_tokens,
                tokens_full_history=input_tokens,
            ),
        )

    def _remember(self, prepared: Prepared, model: str) -> None:
        self._recent[prepared.request_id] = _Recent(
            prepared.caller.tenant_id, model, prepared.request
        )
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    def recent(self, request_id: str, tenant_id: str) -> tuple[str, gateway_pb2.AskRequest] | None:
        """(model, request) of a recent answer of this tenant on this replica, if known."""
        found = self._recent.get(request_id)
        if found is None or found.tenant_id != tenant_id:
            return None
        return found.model, found.request

    # -- background work --------------------------------------------------------------------

    def _settle(self, reservation: Reservation | None, actual: Amounts) -> None:
        if reservation is not None and not reservation.empty:
            self._in_background(reservation.settle(actual), "settle a reservation")

    def _publish(self, event: events_pb2.LlmCompleted) -> None:
        # The caller has their answer; recording it must not add to their latency. The
        # bus adapter retries through reconnects; a failure is counted and logged.
        self._in_background(self._publish_now(event), "publish llm.completed")

    async def _publish_now(self, event: events_pb2.LlmCompleted) -> None:
        try:
            await publish_event(self._bus, LLM_COMPLETED, event)
        except Exception:
            PUBLISH_FAILURES.labels(LLM_COMPLETED).inc()
            raise

    def _in_background(self, work: Awaitable[None], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception(f"could not {what}")

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for settlements and events still in flight (at shutdown, and in tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
