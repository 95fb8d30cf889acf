"""gRPC adapter of the Gateway service: Ask, AskStream, Quote, Feedback, Usage.

Every call is authenticated from the ``authorization`` metadata ("Bearer <key>") first;
domain errors become statuses in the platform's boundary interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Protocol

import grpc

from llmproxy.gateway.access import Authenticator, Caller
from llmproxy.gateway.ask import AskFlow
from llmproxy.gateway.core import stronger_model
from llmproxy.gateway.keys import SCOPE_CHAT, SCOPE_USAGE, SCOPE_USAGE_TENANT
from llmproxy.gateway.store import UsageFilter, UsageTotals
from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.bus.subjects import LLM_FEEDBACK
from llmproxy.platform.errors import InvalidArgumentError, NotFoundError
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.v1 import common_pb2, events_pb2, gateway_pb2, gateway_pb2_grpc

__all__ = ["GatewayServicer", "UsageLedger", "eta_metadata"]


class UsageLedger(Protocol):
    """The usage totals the Usage RPC reads (``store.SqlUsageLedger`` in the product)."""

    async def totals(self, where: UsageFilter) -> UsageTotals: ...


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode()
    return None


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(
        self,
        flow: AskFlow,
        auth: Authenticator,
        *,
        bus: EventBus,
        ledger: UsageLedger,
        source: str = "gateway",
    ) -> None:
        self._flow = flow
        self._auth = auth
        self._bus = bus
        self._ledger = ledger
        self._source = source

    async def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        return await self._auth.authenticate(_authorization(context))

    async def Ask(
        self, request: gateway_pb2.AskRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.AskReply:
        caller = await self._caller(context)

        async def send_eta(eta: common_pb2.Eta) -> None:
            # a queued request: the ETA goes out as initial metadata, before the answer
            await context.send_initial_metadata(eta_metadata(eta))

        return await self._flow.ask(request, caller, on_eta=send_eta)

    async def AskStream(
        self, request: gateway_pb2.AskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.AskChunk]:
        caller = await self._caller(context)
        async for chunk in self._flow.ask_stream(request, caller):
            yield chunk

    async def Quote(
        self, request: gateway_pb2.AskRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.QuoteReply:
        return await self._flow.quote(request, await self._caller(context))

    async def Feedback(
        self, request: gateway_pb2.FeedbackRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.FeedbackReply:
        caller = await self._caller(context)
        caller.require(SCOPE_CHAT)
        return await feedback(self._flow, self._bus, caller, request, source=self._source)

    async def Usage(
        self, request: gateway_pb2.UsageRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.UsageReply:
        caller = await self._caller(context)
        totals = await self._ledger.totals(usage_filter(caller, request))
        reply = gateway_pb2.UsageReply(
            requests=totals.requests,
            cache_hits=totals.cache_hits,
            input_tokens=totals.input_tokens,
            output_tokens=totals.output_tokens,
            cost_nanousd=totals.cost_nanousd,
            saved_nanousd=totals.saved_nanousd,
        )
        for model, (count, cost) in sorted(totals.by_model.items()):
            reply.by_model.add(model=model, requests=count, cost_nanousd=cost)
        return reply


def eta_metadata(eta: common_pb2.Eta) -> tuple[tuple[str, str], ...]:
    """The ``x-llmproxy-eta`` (predicted completion, RFC 3339) and ``x-llmproxy-eta-start``
    metadata of a queued request."""
    pairs = [("x-llmproxy-queued", "true" if eta.queued else "false")]
    if eta.HasField("predicted_completion"):
        pairs.append(("x-llmproxy-eta", eta.predicted_completion.ToJsonString()))
    if eta.HasField("predicted_start"):
        pairs.append(("x-llmproxy-eta-start", eta.predicted_start.ToJsonString()))
    return tuple(pairs)


def usage_filter(caller: Caller, request: gateway_pb2.UsageRequest) -> UsageFilter:
    """What a Usage request may see: always the caller's tenant; an app key its own app."""
    level = request.level or gateway_pb2.USAGE_LEVEL_APP
    scope = request.scope
    if level == gateway_pb2.USAGE_LEVEL_TENANT or (scope.app_id and scope.app_id != caller.app_id):
        caller.require(SCOPE_USAGE_TENANT)
        app_id = scope.app_id if level != gateway_pb2.USAGE_LEVEL_TENANT else ""
    else:
        caller.require(SCOPE_USAGE)
        app_id = caller.app_id
    if level == gateway_pb2.USAGE_LEVEL_USER and not scope.user_id:
        raise InvalidArgumentError("USAGE_LEVEL_USER needs scope.user_id", field="scope.user_id")
    if level == gateway_pb2.USAGE_LEVEL_CONVERSATION and not scope.conversation_id:
        raise InvalidArgumentError(
            "USAGE_LEVEL_CONVERSATION needs scope.conversation_id", field="scope.conversation_id"
        )
    since = request.since.ToDatetime(UTC) if request.HasField("since") else None
    until = request.until.ToDatetime(UTC) if request.HasField("until") else None
    if since and until and since >= until:
        raise InvalidArgumentError("since must be before until", field="since")
    return UsageFilter(
        tenant_id=caller.tenant_id,
        app_id=app_id,
        user_id=scope.user_id if level == gateway_pb2.USAGE_LEVEL_USER else "",
        conversation_id=(
            scope.conversation_id if level == gateway_pb2.USAGE_LEVEL_CONVERSATION else ""
        ),
        since=since,
        until=until,
    )


async def feedback(
    flow: AskFlow,
    bus: EventBus,
    caller: Caller,
    request: gateway_pb2.FeedbackRequest,
    *,
    source: str,
) -> gateway_pb2.FeedbackReply:
    """Record a rating / "wrong" / "escalate" as ``llm.feedback``; escalate answers again.

    Escalation re-asks the original request with the next stronger model; the gateway
    replica remembers its recent requests (the last 10,000) for this, so feedback on an
    older request, or one another replica served, is recorded but cannot escalate.
    """
    kind = request.WhichOneof("kind")
    if not request.request_id:
        raise InvalidArgumentError("request_id is required", field="request_id")
    if kind is None:
        raise InvalidArgumentError("give one of rating, wrong or escalate", field="kind")
    if kind == "rating" and not 1 <= request.rating <= 5:
        raise InvalidArgumentError(f"rating must be 1..5, got {request.rating}", field="rating")
    recent = flow.recent(request.request_id, caller.tenant_id)
    event = events_pb2.LlmFeedback(
        meta=new_event_meta(source),
        request_id=request.request_id,
        scope=common_pb2.Scope(tenant_id=caller.tenant_id, app_id=caller.app_id),
        kind={
            "rating": events_pb2.FEEDBACK_KIND_RATING,
            "wrong": events_pb2.FEEDBACK_KIND_WRONG,
            "escalate": events_pb2.FEEDBACK_KIND_ESCALATE,
        }[kind],
        rating=request.rating if kind == "rating" else 0,
        comment=request.comment,
        model=recent[0] if recent else "",
    )
    reply = gateway_pb2.FeedbackReply(accepted=True)
    if kind == "escalate" and request.escalate:
        if recent is None:
            raise NotFoundError(
                f"request {request.request_id!r} is not among this gateway's recent answers "
                "for your tenant; escalation re-asks recent requests only"
            )
        stronger = stronger_model(flow.catalog, recent[0])
        if stronger is None:
            raise InvalidArgumentError(
                f"{recent[0]} is already the strongest model available", field="escalate"
            )
        again = gateway_pb2.AskRequest()
        again.CopyFrom(recent[1])
        again.request_id = ""
        again.preferences.pinned_model = stronger.name
        del again.preferences.allowed_models[:]
        escalated = await flow.ask(again, caller)
        escalated.choice.escalated = True
        reply.escalated.CopyFrom(escalated)
    await publish_event(bus, LLM_FEEDBACK, event)
    return reply
