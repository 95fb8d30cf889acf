"""gRPC adapter of the Gateway service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from llmproxy.gateway.ask import AskFlow, Caller
from llmproxy.v1 import gateway_pb2, gateway_pb2_grpc

__all__ = ["GatewayServicer"]


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    """Ask and AskStream. Quote, Feedback and Usage are not built yet (UNIMPLEMENTED)."""

    def __init__(self, flow: AskFlow, default_caller: Caller) -> None:
        self._flow = flow
        self._caller = default_caller

    def _caller_of(self, context: grpc.aio.ServicerContext) -> Caller:
        # API keys and tenants arrive with the gateway work; until then every call is the
        # embedded default tenant's.
        return self._caller

    async def Ask(  # noqa: N802 (gRPC method name)
        self, request: gateway_pb2.AskRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.AskReply:
        return await self._flow.ask(request, self._caller_of(context))

    async def AskStream(  # noqa: N802
        self, request: gateway_pb2.AskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.AskChunk]:
        async for chunk in self._flow.ask_stream(request, self._caller_of(context)):
            yield chunk
