"""Protobuf replies and ``llm.completed`` events of the request path (pure mapping)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from llmproxy.gateway.access import Caller
from llmproxy.gateway.catalog import Catalog, ModelSpec
from llmproxy.gateway.core import Choice, QuoteLine, price_answer
from llmproxy.gateway.limits import Amounts
from llmproxy.gateway.providers.port import ChatRequest, ChatResult
from llmproxy.gateway.selection import Selection
from llmproxy.platform.events import new_event_meta
from llmproxy.v1 import cache_pb2, common_pb2, events_pb2, gateway_pb2

__all__ = [
    "Prepared",
    "cached_reply",
    "choice_message",
    "completed_event",
    "failure_event",
    "quote_option",
    "reply_for",
]


@dataclass(slots=True)
class Prepared:
    """A validated request, ready for the provider: everything decided before any spend."""

    request_id: str
    request: gateway_pb2.AskRequest
    caller: Caller
    scope: common_pb2.Scope
    choice: Choice
    messages: list[common_pb2.Message]
    context: common_pb2.ContextReport
    chat: ChatRequest
    accepted_at: datetime
    input_tokens: int
    #: the most output it may produce (what the reservation is priced on)
    output_budget: int
    estimate: Amounts
    #: the chosen model, then the fallbacks
    chain: tuple[ModelSpec, ...]
    #: set when a fallback answered instead of the chosen model
    fallback_reason: str = ""
    answered_by: ModelSpec | None = field(default=None)
    #: hash of what was sent before the new prompt (scopes cache entries to a context)
    context_fingerprint: str = ""
    #: the cache's outcome for this request, and the key its answer is stored under
    cache: common_pb2.CacheReport = field(
        default_factory=lambda: common_pb2.CacheReport(outcome=common_pb2.CACHE_OUTCOME_BYPASSED)
    )
    cache_key: str = ""


def choice_message(
    choice: Choice, *, model: ModelSpec | None = None, reason: str = ""
) -> common_pb2.ModelChoice:
    answered = model or choice.model
    fallback = answered.name != choice.model.name
    selected = isinstance(choice, Selection) and not fallback
    return common_pb2.ModelChoice(
        provider=answered.provider,
        model=answered.name,
        policy="fallback" if fallback else choice.policy,
        reason=reason or choice.reason,
        # the selection's estimate (router, profile or prior) for the model it chose
        predicted_quality=choice.predicted_quality if selected else answered.quality,
        escalated=choice.escalated if selected else False,
    )


def actual_amounts(result: ChatResult, cost_nanousd: int) -> Amounts:
    return Amounts(
        cost_nanousd=cost_nanousd,
        requests=1,
        tokens=result.input_tokens + result.output_tokens,
    )


def reply_for(catalog: Catalog, prepared: Prepared, result: ChatResult) -> gateway_pb2.AskReply:
    """The caller's reply for ``result`` (cost and savings included)."""
    model = prepared.answered_by or prepared.choice.model
    pricing = price_answer(
        catalog,
        model,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cached_input_tokens=result.cached_input_tokens,
        reference_model=prepared.caller.reference_model,
    )
    reply = gateway_pb2.AskReply(
        request_id=prepared.request_id,
        answer=result.text,
        finish_reason=result.finish_reason,
        choice=choice_message(prepared.choice, model=model, reason=prepared.fallback_reason),
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
        cache=prepared.cache,
        context=prepared.context,
        conversation_id=prepared.scope.conversation_id,
    )
    reply.latency.FromNanoseconds(int(result.latency_s * 1e9))
    reply.time_to_first_token.FromNanoseconds(int(result.time_to_first_token_s * 1e9))
    reply.eta.CopyFrom(eta_for(prepared))
    reply.eta.actual_completion.FromDatetime(datetime.now(UTC))
    return reply


def cached_reply(
    catalog: Catalog, prepared: Prepared, hit: cache_pb2.CacheLookupReply, latency_s: float
) -> gateway_pb2.AskReply:
    """The reply for a cache hit: the stored answer, free, the whole reference price saved."""
    pricing = price_answer(
        catalog,
        prepared.choice.model,
        input_tokens=hit.usage.input_tokens,
        output_tokens=hit.usage.output_tokens,
        charged=False,
        reference_model=prepared.caller.reference_model,
    )
    choice = choice_message(prepared.choice, reason="answered from the cache")
    choice.policy = "cache"
    if hit.model:
        choice.model = hit.model
    reply = gateway_pb2.AskReply(
        request_id=prepared.request_id,
        answer=hit.answer,
        finish_reason="stop",
        choice=choice,
        usage=hit.usage,
        cost=common_pb2.Cost(
            cost_nanousd=0,
            reference_cost_nanousd=pricing.reference_cost_nanousd,
            saved_nanousd=pricing.saved_nanousd,
            reference_model=pricing.reference_model,
        ),
        cache=hit.report,
        context=prepared.context,
        conversation_id=prepared.scope.conversation_id,
    )
    reply.latency.FromNanoseconds(int(latency_s * 1e9))
    reply.time_to_first_token.CopyFrom(reply.latency)
    reply.eta.accepted_at.FromDatetime(prepared.accepted_at)
    reply.eta.predicted_completion.FromDatetime(prepared.accepted_at)
    reply.eta.actual_completion.FromDatetime(datetime.now(UTC))
    return reply


def eta_for(prepared: Prepared) -> common_pb2.Eta:
    """Accepted now; predicted from the catalog's latency prior (the scheduler refines it later)."""
    eta = common_pb2.Eta()
    eta.accepted_at.FromDatetime(prepared.accepted_at)
    predicted = prepared.accepted_at + timedelta(
        seconds=prepared.choice.model.estimated_latency_s(prepared.output_budget)
    )
    eta.predicted_completion.FromDatetime(predicted)
    return eta


def _base_event(prepared: Prepared, source: str) -> events_pb2.LlmCompleted:
    request = prepared.request
    model = prepared.answered_by or prepared.choice.model
    event = events_pb2.LlmCompleted(
        meta=new_event_meta(source),
        request_id=prepared.request_id,
        scope=prepared.scope,
        choice=choice_message(prepared.choice, model=model, reason=prepared.fallback_reason),
        context=prepared.context,
        task_category=request.task_category,
        cache_policy=request.cache,
        user_prompt=request.prompt,
        system_prompt=request.system_prompt,
    )
    event.prompt.extend(prepared.messages)
    event.cache_key = prepared.cache_key
    return event


def completed_event(
    prepared: Prepared, reply: gateway_pb2.AskReply, source: str
) -> events_pb2.LlmCompleted:
    event = _base_event(prepared, source)
    event.usage.CopyFrom(reply.usage)
    event.cost.CopyFrom(reply.cost)
    event.cache.CopyFrom(reply.cache)
    event.latency.CopyFrom(reply.latency)
    event.time_to_first_token.CopyFrom(reply.time_to_first_token)
    event.eta.CopyFrom(reply.eta)
    event.answer = reply.answer
    event.finish_reason = reply.finish_reason
    return event


def failure_event(
    catalog: Catalog,
    prepared: Prepared,
    message: str,
    source: str,
    *,
    partial: ChatResult | None = None,
) -> events_pb2.LlmCompleted:
    """A failed request: no charge, unless a stream had already produced (billed) tokens."""
    event = _base_event(prepared, source)
    event.error = True
    event.error_message = message
    event.cache.outcome = common_pb2.CACHE_OUTCOME_BYPASSED
    if partial is not None:
        reply = reply_for(catalog, prepared, partial)
        event.usage.CopyFrom(reply.usage)
        event.cost.CopyFrom(reply.cost)
        event.answer = partial.text
    return event


def quote_option(line: QuoteLine, policy: str, accepted_at: datetime) -> gateway_pb2.QuoteOption:
    option = gateway_pb2.QuoteOption(
        choice=common_pb2.ModelChoice(
            provider=line.model.provider,
            model=line.model.name,
            policy=policy if line.selected else "",
            predicted_quality=line.model.quality,
            reason="what Ask would use now" if line.selected else "",
        ),
        estimated_cost_nanousd=line.estimated_cost_nanousd,
        selected=line.selected,
        within_constraints=line.within_constraints,
        excluded_reason=line.excluded_reason,
    )
    option.estimated_latency.FromNanoseconds(int(line.estimated_latency_s * 1e9))
    option.eta.accepted_at.FromDatetime(accepted_at)
    option.eta.predicted_completion.FromDatetime(
        accepted_at + timedelta(seconds=line.estimated_latency_s)
    )
    return option
