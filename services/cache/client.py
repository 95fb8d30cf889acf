"""Client adapter of the Cache service, for the gateway.

Every gRPC failure becomes an :class:`LLMProxyError` once, here. The gateway should treat
an unavailable cache as a miss (the cache saves money; it must never cost an answer).
"""

from __future__ import annotations

import grpc

from llmproxy.platform.grpc_boundary import error_from_rpc
from llmproxy.v1 import cache_pb2, cache_pb2_grpc

__all__ = ["GrpcCacheClient"]


class GrpcCacheClient:
    """``lookup`` before model selection; ``invalidate`` and ``stats`` for operators.

    Answers are stored by the cache's own ``llm.completed`` consumer when the gateway puts
    the lookup's ``cache_key`` in the event; ``store`` is there for callers without events.
    """

    def __init__(
        self, channel: grpc.aio.Channel, *, timeout_s: float = 0.5, peer: str = "cache service"
    ) -> None:
        self._stub = cache_pb2_grpc.CacheStub(channel)
        self._timeout = timeout_s
        self._peer = peer

    async def lookup(self, request: cache_pb2.CacheLookupRequest) -> cache_pb2.CacheLookupReply:
        try:
            return await self._stub.Lookup(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer=self._peer) from exc

    async def store(self, request: cache_pb2.CacheStoreRequest) -> cache_pb2.CacheStoreReply:
        try:
            return await self._stub.Store(request, timeout=self._timeout * 4)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer=self._peer) from exc

    async def invalidate(
        self, request: cache_pb2.CacheInvalidateRequest
    ) -> cache_pb2.CacheInvalidateReply:
        try:
            return await self._stub.Invalidate(request, timeout=self._timeout * 4)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer=self._peer) from exc

    async def stats(self, request: cache_pb2.CacheStatsRequest) -> cache_pb2.CacheStatsReply:
        try:
            return await self._stub.Stats(request, timeout=self._timeout * 4)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, peer=self._peer) from exc
