"""A service's channel to another service finds it again quickly after it restarts
(gRPC's default reconnect backoff left the gateway failing for seconds after the context
service came back)."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from llmproxy.platform.connect import SERVER_OPTIONS, service_channel
from llmproxy.platform.processes import free_port


async def _server(port: int) -> grpc.aio.Server:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    return server


async def _check(stub: health_pb2_grpc.HealthStub) -> bool:
    try:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        return True
    except grpc.aio.AioRpcError:
        return False


async def test_a_restarted_dependency_is_reached_again_within_two_seconds() -> None:
    port = free_port()
    server = await _server(port)
    async with service_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert await _check(stub)
        await server.stop(None)
        # callers keep calling while it is down (this is what grows the backoff)
        down_until = time.monotonic() + 3.0
        while time.monotonic() < down_until:
            assert not await _check(stub)
            await asyncio.sleep(0.1)
        server = await _server(port)
        restarted = time.monotonic()
        try:
            while not await _check(stub):
                assert time.monotonic() - restarted < 2.0, "not reconnected within 2 s"
                await asyncio.sleep(0.05)
            reconnected_s = time.monotonic() - restarted
        finally:
            await server.stop(None)
    assert reconnected_s < 2.0
