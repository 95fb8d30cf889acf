"""The Optimizer's router calls over gRPC (real NATS, SQLite, MiniLM): TrainRouter stores an
inactive version, ListRouters shows it, ActivateRouter makes it the one active router and
publishes ``policy.updated``; bad requests are refused with INVALID_ARGUMENT / NOT_FOUND and
change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import grpc
import pytest

from llmproxy.optimizer.router.dataset import DEFAULT_DATA_DIR
from llmproxy.optimizer.service import App, Settings
from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.bus.port import Delivery, Envelope
from llmproxy.platform.bus.subjects import POLICY_UPDATED
from llmproxy.platform.events import decode_event
from llmproxy.platform.grpc_boundary import BoundaryInterceptor
from llmproxy.v1 import events_pb2, optimizer_pb2, optimizer_pb2_grpc


@pytest.fixture
async def stub(
    nats_url: str, sqlite_db_url: str
) -> AsyncIterator[optimizer_pb2_grpc.OptimizerStub]:
    async with AsyncExitStack() as stack:
        settings = Settings(nats_url=nats_url, database_url=sqlite_db_url, instance_id="rpc")
        app = App(settings)
        server = grpc.aio.server(interceptors=[BoundaryInterceptor()])
        await app.start(server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

        async def stop() -> None:
            await channel.close()
            await server.stop(None)
            await app.stop()

        stack.push_async_callback(stop)
        yield optimizer_pb2_grpc.OptimizerStub(channel)


async def test_bad_router_requests_are_refused_and_change_nothing(
    stub: optimizer_pb2_grpc.OptimizerStub,
) -> None:
    assert list((await stub.ListRouters(optimizer_pb2.ListRoutersRequest())).routers) == []
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.ActivateRouter(optimizer_pb2.RouterRef())
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "version" in (empty.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.ActivateRouter(optimizer_pb2.RouterRef(version="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as three:
        await stub.TrainRouter(
            optimizer_pb2.TrainRouterRequest(candidate_models=["a", "b", "c"])
        )
    assert three.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "candidate_models" in (three.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as domain:
        await stub.TrainRouter(optimizer_pb2.TrainRouterRequest(train_domains=["astrology"]))
    assert domain.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "astrology" in (domain.value.details() or "")
    assert list((await stub.ListRouters(optimizer_pb2.ListRoutersRequest())).routers) == []


async def test_train_list_and_activate_over_grpc_publishes_the_policy(
    stub: optimizer_pb2_grpc.OptimizerStub, nats_url: str
) -> None:
    if not DEFAULT_DATA_DIR.is_dir():
        pytest.skip(f"{DEFAULT_DATA_DIR} is absent (shared routing data not checked out)")
    trained = await stub.TrainRouter(
        optimizer_pb2.TrainRouterRequest(
            train_domains=["abstract_algebra", "college_chemistry", "marketing"], seed=3
        ),
        timeout=240,
    )
    assert trained.version and not trained.active
    assert trained.eval_metrics["train_prompts"] > 250
    listed = (await stub.ListRouters(optimizer_pb2.ListRoutersRequest())).routers
    assert [(r.version, r.active) for r in listed] == [(trained.version, False)]

    listener = await JetStreamBus.connect(nats_url, name="router-rpc-watcher")
    seen: asyncio.Queue[events_pb2.PolicyUpdated] = asyncio.Queue()

    async def on_policy(envelope: Envelope) -> None:
        await seen.put(decode_event(envelope, events_pb2.PolicyUpdated))

    subscription = await listener.subscribe(
        POLICY_UPDATED, on_policy, consumer="router-rpc-test", delivery=Delivery.BROADCAST
    )
    try:
        active = await stub.ActivateRouter(optimizer_pb2.RouterRef(version=trained.version))
        assert active.active and active.version == trained.version
        event = await asyncio.wait_for(seen.get(), timeout=10)
        assert event.router.version == trained.version
        assert event.router.artifact_uri == f"db:router_policies/{trained.version}"
    finally:
        await subscription.stop()
        await listener.close()
    listed = (await stub.ListRouters(optimizer_pb2.ListRoutersRequest())).routers
    assert [(r.version, r.active) for r in listed] == [(trained.version, True)]
