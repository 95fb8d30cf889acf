"""The Optimizer service over real NATS JetStream and SQLite: replicas share a search's
evaluations through the ``search.evaluate`` work queue, a dead replica's task is delivered
again, ApplyConfig publishes ``policy.updated``, and bad requests are refused."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from nats.aio.client import Client

from llmproxy.optimizer.pcs.evaluation import evaluate_mapping
from llmproxy.optimizer.pcs.space import Candidate
from llmproxy.optimizer.repository import SearchRepository
from llmproxy.optimizer.service import App, Settings
from llmproxy.optimizer.work_queue import EVALUATE_CONSUMER
from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.bus.port import Delivery, Envelope
from llmproxy.platform.bus.subjects import POLICY_UPDATED, SEARCH_COMPLETED, SEARCH_PROGRESS
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.events import decode_event
from llmproxy.platform.grpc_boundary import BoundaryInterceptor
from llmproxy.v1 import events_pb2, optimizer_pb2, optimizer_pb2_grpc
from tests.support.services import ServiceProcess, service_env


@dataclass
class Replica:
    app: App
    stub: optimizer_pb2_grpc.OptimizerStub


async def start_replica(
    stack: AsyncExitStack,
    nats_url: str,
    db_url: str,
    name: str,
    *,
    processes: int = 1,
    ack_wait: str = "60s",
    max_deliveries: int = 5,
) -> Replica:
    settings = Settings(
        nats_url=nats_url,
        database_url=db_url,
        instance_id=name,
        eval_processes=processes,
        eval_ack_wait=ack_wait,  # type: ignore[arg-type]
        eval_max_deliveries=max_deliveries,
    )
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
    return Replica(app, optimizer_pb2_grpc.OptimizerStub(channel))


def request(jobs: int = 150, population: int = 8, generations: int = 2, **extra: object):  # type: ignore[no-untyped-def]
    return optimizer_pb2.StartSearchRequest(
        workload=optimizer_pb2.WorkloadSource(
            trace_path="0e4a51", jobs_limit=jobs, cluster_gpus=64
        ),
        objectives=[
            optimizer_pb2.SEARCH_OBJECTIVE_MEAN_PREDICTION_ERROR,
            optimizer_pb2.SEARCH_OBJECTIVE_MEAN_JCT,
        ],
        population=population,
        generations=generations,
        seed=5,
        **extra,  # type: ignore[arg-type]
    )


async def wait_completed(
    stub: optimizer_pb2_grpc.OptimizerStub, search_id: str, timeout_s: float = 90
):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        search = await stub.GetSearch(optimizer_pb2.SearchRef(search_id=search_id))
        if search.state == optimizer_pb2.SEARCH_STATE_COMPLETED:
            return search
        assert search.state != optimizer_pb2.SEARCH_STATE_FAILED, search.error
        assert asyncio.get_running_loop().time() < deadline, f"search stuck: {search}"
        await asyncio.sleep(0.2)


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def crash_on_three_classes(spec: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, float]:
    """The real simulation, except that it always fails for 3+ classes (runs in the
    replica's worker process, so it lives at module level)."""
    classes = Candidate.from_mapping(data).config.num_classes
    if classes >= 3:
        raise RuntimeError(f"simulator crashed on {classes} classes")
    return evaluate_mapping(spec, data)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as resources:
        yield resources


async def test_two_replicas_share_one_search_each_candidate_evaluated_once(
    stack: AsyncExitStack, nats_url: str, sqlite_db_url: str
) -> None:
    a = await start_replica(stack, nats_url, sqlite_db_url, "replica-a")
    b = await start_replica(stack, nats_url, sqlite_db_url, "replica-b")
    listener = await JetStreamBus.connect(nats_url, name="search-watcher")
    stack.push_async_callback(listener.close)
    seen: list[tuple[str, str]] = []

    async def on_event(envelope: Envelope) -> None:
        seen.append((envelope.subject, envelope.event_id))

    for subject in (SEARCH_PROGRESS, SEARCH_COMPLETED):
        await listener.subscribe(
            subject, on_event, consumer=f"watch-{subject}", delivery=Delivery.BROADCAST
        )
    started = await a.stub.StartSearch(request(jobs=100, population=6, generations=2))
    search = await wait_completed(a.stub, started.search_id)
    deadline = asyncio.get_running_loop().time() + 5
    while [s for s, _ in seen].count(SEARCH_COMPLETED) < 1:
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.05)
    assert [s for s, _ in seen] == [SEARCH_PROGRESS, SEARCH_PROGRESS, SEARCH_COMPLETED]

    assert search.front and {"pred", "bal", "jct"} <= {
        name for p in search.front for name in p.preset.split(",") if name
    }
    engine = create_engine(sqlite_db_url)
    stack.push_async_callback(engine.dispose)
    repository = SearchRepository(session_factory(engine))
    points = {p.config_hash for p in await repository.points(search.search_id)}
    assert len(points) == search.evaluated
    assert a.app.worker is not None and b.app.worker is not None
    by_a, by_b = a.app.worker.simulated, b.app.worker.simulated
    assert by_a and by_b, "both replicas took evaluations from the queue"
    assert len(by_a) + len(by_b) == len(set(by_a) | set(by_b)) == len(points)
    assert set(by_a) | set(by_b) == points
    assert await repository.evaluators((await repository.get(search.search_id)).workload.key) == {
        "replica-a": len(by_a),
        "replica-b": len(by_b),
    }


async def test_a_killed_replicas_task_is_delivered_again_and_completed(
    stack: AsyncExitStack, nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    # replica B is a real process; it alone evaluates at first (A only drives the search)
    b = ServiceProcess(
        "optimizer",
        service_env(
            NATS_URL=nats_url,
            DATABASE_URL=sqlite_db_url,
            LLMPROXY_INSTANCE_ID="replica-b",
            LLMPROXY_EVAL_PROCESSES="1",
            LLMPROXY_EVAL_ACK_WAIT="2s",
        ),
        tmp_path / "replica-b.log",
    ).start()
    stack.callback(b.kill)
    a = await start_replica(stack, nats_url, sqlite_db_url, "replica-a", processes=0)
    started = await a.stub.StartSearch(request(jobs=400, population=6, generations=1))

    engine = create_engine(sqlite_db_url)
    stack.push_async_callback(engine.dispose)
    repository = SearchRepository(session_factory(engine))
    key = (await repository.get(started.search_id)).workload.key
    deadline = asyncio.get_running_loop().time() + 60
    while not (await repository.evaluators(key)).get("replica-b"):
        assert asyncio.get_running_loop().time() < deadline, b.log.read_text()[-2000:]
        await asyncio.sleep(0.05)
    assert b.process is not None
    workers = children(b.process.pid)
    b.process.send_signal(signal.SIGKILL)  # dies holding its next task, never acks it
    b.process.wait()
    for pid in workers:  # its simulation process, orphaned by the kill
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    c = await start_replica(stack, nats_url, sqlite_db_url, "replica-c", ack_wait="2s")
    search = await wait_completed(a.stub, started.search_id)
    evaluators = await repository.evaluators(key)
    assert set(evaluators) == {"replica-b", "replica-c"}
    assert sum(evaluators.values()) == search.evaluated  # every candidate stored once

    assert c.app.worker is not None and c.app.worker.simulated
    assert c.app.worker.redelivered, "the task the dead replica held was delivered again"
    client = Client()
    await client.connect(nats_url)
    try:
        info = await client.jetstream().consumer_info("SEARCH_TASKS", EVALUATE_CONSUMER)
    finally:
        await client.close()
    assert info.num_pending == 0 and info.num_ack_pending == 0  # the queue is drained


async def test_a_task_that_keeps_failing_is_stored_as_failed_and_terminated(
    stack: AsyncExitStack, nats_url: str, sqlite_db_url: str
) -> None:
    a = await start_replica(stack, nats_url, sqlite_db_url, "replica-a", max_deliveries=3)
    assert a.app.worker is not None
    a.app.worker.evaluate_fn = crash_on_three_classes
    started = await a.stub.StartSearch(request(jobs=80, population=8, generations=2))
    search = await wait_completed(a.stub, started.search_id, timeout_s=120)

    engine = create_engine(sqlite_db_url)
    stack.push_async_callback(engine.dispose)
    repository = SearchRepository(session_factory(engine))
    points = await repository.points(search.search_id)
    failed = {p.config_hash for p in points if p.failed}
    assert failed == {p.config_hash for p in points if p.candidate.config.num_classes >= 3}
    assert failed, "the search asked for configurations with 3+ classes"
    for point in points:
        if point.failed:
            assert point.error == (
                f"RuntimeError: simulator crashed on {point.candidate.config.num_classes} classes"
            )
            assert math.isnan(point.metrics["error_mean"]) and point.metrics["attempts"] == 3
            assert not point.on_front and not point.presets
    assert failed.isdisjoint(p.candidate_id for p in search.front)
    assert sorted(a.app.worker.failed) == sorted(failed)

    # each failing task was delivered 3 times, then terminated: never delivered again
    await asyncio.sleep(3)  # longer than the bus's backoff before a 4th delivery
    deliveries = Counter(a.app.worker.redelivered)
    assert {h: deliveries[h] + 1 for h in failed} == dict.fromkeys(failed, 3)
    client = Client()
    await client.connect(nats_url)
    try:
        js = client.jetstream()
        info = await js.consumer_info("SEARCH_TASKS", EVALUATE_CONSUMER)
        stream = await js.stream_info("SEARCH_TASKS")
    finally:
        await client.close()
    assert info.num_pending == 0 and info.num_ack_pending == 0
    assert stream.state.messages == 0  # the work queue holds nothing: no task left behind


async def test_apply_publishes_the_chosen_point_as_policy_updated(
    stack: AsyncExitStack, nats_url: str, sqlite_db_url: str
) -> None:
    a = await start_replica(stack, nats_url, sqlite_db_url, "replica-a")
    started = await a.stub.StartSearch(request(jobs=60, population=4, generations=2))
    search = await wait_completed(a.stub, started.search_id)

    listener = await JetStreamBus.connect(nats_url, name="scheduler-listener")
    stack.push_async_callback(listener.close)
    received: list[events_pb2.PolicyUpdated] = []

    async def on_policy(envelope: Envelope) -> None:
        received.append(decode_event(envelope, events_pb2.PolicyUpdated))

    await listener.subscribe(
        POLICY_UPDATED, on_policy, consumer="test-policy", delivery=Delivery.BROADCAST
    )

    # bad requests: clear status, nothing published
    for bad, code in (
        (
            optimizer_pb2.ApplyConfigRequest(search_id=search.search_id, preset="fastest"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            optimizer_pb2.ApplyConfigRequest(search_id="s-nope", preset="bal"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            optimizer_pb2.ApplyConfigRequest(search_id=search.search_id, candidate_id="feedbeef"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            optimizer_pb2.ApplyConfigRequest(search_id=search.search_id),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.stub.ApplyConfig(bad)
        assert caught.value.code() == code, caught.value.details()

    balanced = next(p for p in search.front if "bal" in p.preset.split(","))
    reply = await a.stub.ApplyConfig(
        optimizer_pb2.ApplyConfigRequest(search_id=search.search_id, preset="bal", pool="gpu-a")
    )
    assert reply.config == balanced.config
    deadline = asyncio.get_running_loop().time() + 10
    while not received:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert len(received) == 1
    event = received[0]
    assert event.policy_id == reply.policy_id and event.scheduler_pool == "gpu-a"
    assert event.WhichOneof("policy") == "wfq" and event.wfq == balanced.config
    assert abs(sum(c.weight for c in event.wfq.classes) - 1.0) < 1e-9


async def test_bad_start_requests_are_refused_and_create_nothing(
    stack: AsyncExitStack, nats_url: str, sqlite_db_url: str
) -> None:
    a = await start_replica(stack, nats_url, sqlite_db_url, "replica-a")
    unknown_trace = request()
    unknown_trace.workload.trace_path = "ffffff"
    for bad, words in (
        (unknown_trace, "unknown trace 'ffffff'"),
        (request(population=2), "population must be in 4..500"),
        (request(generations=500), "generations must be in 1..200"),
        (request(algorithm="annealing"), "algorithm 'annealing'"),
        (optimizer_pb2.StartSearchRequest(objectives=[99]), "unknown objective"),
        (optimizer_pb2.StartSearchRequest(), "workload needs one of"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.stub.StartSearch(bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await a.stub.GetSearch(optimizer_pb2.SearchRef(search_id="s-nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await a.stub.ListSearches(optimizer_pb2.ListSearchesRequest())
    assert list(listed.searches) == []
