"""Asking services for their gRPC health."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["check_health"]


async def _one(address: str, timeout_s: float) -> str:
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.aio.AioRpcError as exc:
        return f"UNREACHABLE ({exc.code().name})"


async def check_health(addresses: Mapping[str, str], *, timeout_s: float = 2.0) -> dict[str, str]:
    """``{name: "SERVING" | "NOT_SERVING" | "UNREACHABLE (...)"}`` for each address."""
    names = list(addresses)
    results = await asyncio.gather(*(_one(addresses[n], timeout_s) for n in names))
    return dict(zip(names, results, strict=True))
