"""The services behind the channel, over gRPC: the gateway (answers, usage, models) and the
context service (erasing conversations). Failures come back as the platform's errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import structlog

from llmproxy.platform.errors import ConfigurationError, UnavailableError
from llmproxy.platform.grpc_boundary import error_from_rpc
from llmproxy.v1 import common_pb2, context_pb2, context_pb2_grpc, gateway_pb2, gateway_pb2_grpc
from llmproxy.whatsapp.core import UsageSummary, UserState, predicted_wait

__all__ = ["Answer", "GrpcUpstream", "ask_request"]

log = structlog.get_logger(__name__)

_OBJECTIVES = {
    "cost": common_pb2.OBJECTIVE_COST,
    "balanced": common_pb2.OBJECTIVE_BALANCED,
    "quality": common_pb2.OBJECTIVE_QUALITY,
}
_STRATEGIES = {
    "full": common_pb2.CONTEXT_STRATEGY_FULL,
    "last_k": common_pb2.CONTEXT_STRATEGY_LAST_K,
    "token_budget": common_pb2.CONTEXT_STRATEGY_TOKEN_BUDGET,
    "summary": common_pb2.CONTEXT_STRATEGY_SUMMARY,
    "relevant": common_pb2.CONTEXT_STRATEGY_RELEVANT,
}
_CACHE_HITS = (common_pb2.CACHE_OUTCOME_EXACT_HIT, common_pb2.CACHE_OUTCOME_SEMANTIC_HIT)
#: a Quote that takes longer is not waited for (the stream's own ETA is used)
_QUOTE_TIMEOUT_S = 5.0
#: what last_k / token_budget send when the user named no number
_DEFAULT_LAST_K = 6
_DEFAULT_TOKEN_BUDGET = 1000


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    request_id: str
    conversation_id: str
    model: str
    cost_nanousd: int


def ask_request(
    user: UserState, prompt: str, *, request_id: str, system_prompt: str, max_tokens: int
) -> gateway_pb2.AskRequest:
    """The gateway request for ``user``'s question, with their preferences."""
    request = gateway_pb2.AskRequest(
        prompt=prompt,
        system_prompt=system_prompt,
        scope=common_pb2.Scope(user_id=user.user_id, conversation_id=user.conversation_id),
        preferences=common_pb2.Preferences(
            objective=_OBJECTIVES.get(user.objective, common_pb2.OBJECTIVE_UNSPECIFIED),
            pinned_model=user.pinned_model,
        ),
        cache=common_pb2.CachePolicy(
            mode=common_pb2.CACHE_MODE_UNSPECIFIED
            if user.cache_enabled
            else common_pb2.CACHE_MODE_OFF
        ),
        generation=common_pb2.GenerationParams(max_tokens=max_tokens),
        request_id=request_id,
        task_category="whatsapp",
    )
    strategy = _STRATEGIES.get(user.context_strategy)
    if strategy is not None:
        request.context.strategy = strategy
        param = user.context_param
        if user.context_strategy == "last_k":
            request.context.k = param or _DEFAULT_LAST_K
        elif user.context_strategy == "relevant":
            request.context.k = param
        elif user.context_strategy == "token_budget":
            request.context.token_budget = param or _DEFAULT_TOKEN_BUDGET
    return request


class GrpcUpstream:
    def __init__(
        self,
        gateway: grpc.aio.Channel,
        context: grpc.aio.Channel | None,
        *,
        api_key: str,
        tenant_id: str,
        timeout_s: float,
    ) -> None:
        self._gateway = gateway_pb2_grpc.GatewayStub(gateway)
        self._context = context_pb2_grpc.ContextStub(context) if context is not None else None
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        self._tenant_id = tenant_id
        self._timeout = timeout_s

    async def ask(
        self,
        request: gateway_pb2.AskRequest,
        on_accepted: Callable[[timedelta], Awaitable[None]],
    ) -> Answer:
        """Ask through ``AskStream``; when its first chunk says the question is accepted,
        ``on_accepted`` (the "Got it" notice) gets the predicted wait before the answer is
        generated.

        The wait comes from a Quote asked meanwhile (the same request: the profiler's
        measured latency of the accepted model, see :func:`core.predicted_wait`); the
        stream's own ETA is the catalog's prior unless the gateway marks it ``queued``.
        NOTE: once AskStream's first message carries an ETA from the profiles and the
        queue for every request (gateway work in progress), the Quote can go: use
        ``accepted.eta`` alone and save the extra RPC per question.
        """
        quote = asyncio.ensure_future(self._quoted_waits(request))
        try:
            final: gateway_pb2.AskReply | None = None
            async for chunk in self._gateway.AskStream(
                request, timeout=self._timeout, metadata=self._metadata
            ):
                kind = chunk.WhichOneof("kind")
                if kind == "accepted":
                    accepted = chunk.accepted
                    eta = accepted.eta
                    streamed = None
                    if eta.HasField("predicted_completion") and eta.HasField("accepted_at"):
                        streamed = eta.predicted_completion.ToDatetime(
                            UTC
                        ) - eta.accepted_at.ToDatetime(UTC)
                    quoted = await quote
                    wait = predicted_wait(
                        quoted=quoted.get(accepted.choice.model),
                        streamed=streamed,
                        queued=eta.queued,
                        cache_hit=accepted.cache.outcome in _CACHE_HITS,
                    )
                    await on_accepted(wait)
                elif kind == "final":
                    final = chunk.final
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer="the gateway") from exc
        finally:
            quote.cancel()
        if final is None:
            raise UnavailableError("the gateway's answer stream ended without an answer")
        return Answer(
            text=final.answer,
            request_id=final.request_id,
            conversation_id=final.conversation_id,
            model=final.choice.model,
            cost_nanousd=final.cost.cost_nanousd,
        )

    async def _quoted_waits(self, request: gateway_pb2.AskRequest) -> dict[str, timedelta]:
        """Each model's predicted wait for ``request`` by the gateway's Quote ({} if the
        Quote fails: the notice then follows the stream's ETA)."""
        try:
            reply = await self._gateway.Quote(
                request, timeout=min(self._timeout, _QUOTE_TIMEOUT_S), metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("no quote for the 'Got it' notice", error=exc.details())
            return {}
        waits: dict[str, timedelta] = {}
        for option in reply.options:
            eta = option.eta
            if eta.HasField("predicted_completion") and eta.HasField("accepted_at"):
                wait = eta.predicted_completion.ToDatetime(UTC) - eta.accepted_at.ToDatetime(UTC)
            else:
                wait = option.estimated_latency.ToTimedelta()
            waits[option.choice.model] = wait
        return waits

    async def usage(self, user_id: str, since: datetime) -> UsageSummary:
        request = gateway_pb2.UsageRequest(
            level=gateway_pb2.USAGE_LEVEL_USER, scope=common_pb2.Scope(user_id=user_id)
        )
        request.since.FromDatetime(since)
        try:
            reply = await self._gateway.Usage(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer="the gateway") from exc
        return UsageSummary(
            requests=reply.requests,
            cache_hits=reply.cache_hits,
            cost_nanousd=reply.cost_nanousd,
            saved_nanousd=reply.saved_nanousd,
        )

    async def models(self) -> list[str]:
        """The models the gateway can answer with (from a Quote; nothing is run)."""
        try:
            reply = await self._gateway.Quote(
                gateway_pb2.AskRequest(prompt="Which models can answer?"),
                timeout=self._timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer="the gateway") from exc
        return sorted({o.choice.model for o in reply.options if o.choice.model})

    async def delete_conversation(self, conversation_id: str) -> None:
        """Erase a conversation in the context service (one already gone is fine)."""
        if self._context is None:
            raise ConfigurationError(
                "LLMPROXY_CONTEXT_ADDR: no context service configured; /delete needs it"
            )
        ref = context_pb2.ConversationRef(
            scope=common_pb2.Scope(tenant_id=self._tenant_id, conversation_id=conversation_id)
        )
        try:
            await self._context.DeleteConversation(ref, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return
            raise error_from_rpc(exc, peer="the context service") from exc
