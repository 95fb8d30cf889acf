"""Client adapter for the context service."""

from __future__ import annotations

import grpc

from llmproxy.platform.grpc_boundary import error_from_rpc
from llmproxy.v1 import context_pb2, context_pb2_grpc

__all__ = ["GrpcContextClient"]


class GrpcContextClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout_s: float = 10.0) -> None:
        self._stub = context_pb2_grpc.ContextStub(channel)
        self._timeout = timeout_s

    async def build(
        self, request: context_pb2.BuildContextRequest
    ) -> context_pb2.BuildContextReply:
        try:
            return await self._stub.BuildContext(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer="context service") from exc
