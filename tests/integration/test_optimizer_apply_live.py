"""``llmproxy search apply`` switches a running scheduler's WFQ configuration, end to end
over real processes: a private nats-server, the scheduler service (`llmproxy serve
scheduler`) with a process executor and jobs queued and running, and the search CLI
(`llmproxy search run`, then `apply`) on the same database. The scheduler shows the front
point's classes and weights within seconds; no queued or running job is dropped, restarted
or run twice."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from llmproxy.optimizer.repository import Evaluation, SearchRepository
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.scheduler.executors import ExecutorAgent, ProcessRunner
from llmproxy.v1 import scheduler_pb2, scheduler_pb2_grpc
from tests.support.services import LLMPROXY, ServiceProcess, service_env

pytestmark = pytest.mark.nats

Stub = scheduler_pb2_grpc.SchedulerStub


def llmproxy(*args: str, env: dict[str, str], timeout_s: float = 180) -> str:
    """Run the CLI; its stdout (fails the test with its output when it exits non-zero)."""
    done = subprocess.run(
        [LLMPROXY, *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, f"llmproxy {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextlib.asynccontextmanager
async def running_agent(address: str, work_dir: Path, slots: int) -> AsyncIterator[None]:
    agent = ExecutorAgent(
        address,
        ProcessRunner(work_dir, use_gpus=False),
        executor_id="local",
        pool="default",
        gpus=slots,
        kind="process",
    )
    task = asyncio.create_task(agent.run())
    try:
        yield
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)


async def poll(stub: scheduler_pb2_grpc.SchedulerStub, check, within: float, what: str):  # type: ignore[no-untyped-def]
    """Call ``check(stub)`` until it returns something truthy (its value), else fail."""
    deadline = asyncio.get_running_loop().time() + within
    last = None
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(grpc.aio.AioRpcError):
            last = await check(stub)
            if last:
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not within {within}s; last: {last}")


def pick_point(points: list[Evaluation]) -> Evaluation:
    """The front point with the most classes (the scheduler starts with one class)."""
    front = [p for p in points if p.on_front and p.candidate.config.num_classes >= 2]
    assert front, [p.candidate.describe() for p in points if p.on_front]
    return max(front, key=lambda p: (p.candidate.config.num_classes, p.config_hash))


async def test_apply_switches_the_live_scheduler_without_dropping_jobs(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    env = service_env(
        NATS_URL=nats_url,
        DATABASE_URL=sqlite_db_url,
        LLMPROXY_HEARTBEAT_INTERVAL="0.2s",
        LLMPROXY_EXECUTOR_TIMEOUT="5s",
    )
    # 1. a search on a trace slice, from the command line, stored in the shared database
    out = llmproxy(
        "search",
        "run",
        "--trace",
        "0e4a51",
        "--jobs",
        "120",
        "--population",
        "8",
        "--generations",
        "2",
        "--workers",
        "1",
        "--seed",
        "3",
        "--quiet",
        "--out",
        str(tmp_path),
        env=env,
    )
    assert "plot:" in out
    engine = create_engine(sqlite_db_url)
    try:
        repository = SearchRepository(session_factory(engine))
        record = await repository.latest()
        assert record.state == "completed"
        chosen = pick_point(await repository.points(record.search_id))
    finally:
        await engine.dispose()
    config = chosen.candidate.config

    # 2. the live scheduler with one executor slot: one job running, the rest queued
    service = ServiceProcess("scheduler", env, tmp_path / "scheduler.log").start()
    gate, runs = tmp_path / "go", tmp_path / "runs.txt"
    wait_gate = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    record_run = f'echo "$LLMPROXY_JOB_ID" >> {runs}'
    finite = [t for t in config.thresholds if not math.isinf(t)]
    # one job per class of the new configuration (sizes inside each class), plus the runner
    sizes = [finite[0] / 2, *((a + b) / 2 for a, b in itertools.pairwise(finite))]
    sizes.append(finite[-1] * 2)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            async with running_agent(service.address, tmp_path / "jobs", slots=1):

                async def executor_alive(s: scheduler_pb2_grpc.SchedulerStub) -> bool:
                    state = await s.GetClusterState(scheduler_pb2.ClusterStateRequest())
                    return any(e.executor_id == "local" and e.alive for e in state.executors)

                await poll(stub, executor_alive, 20, "executor registered")

                def submit(command: str, size: float) -> scheduler_pb2.SubmitJobRequest:
                    return scheduler_pb2.SubmitJobRequest(
                        pool="default", gpu_demand=1, size_seconds=size, command=command
                    )

                runner = (await stub.SubmitJob(submit(f"{wait_gate}; {record_run}", 1e6))).job

                async def is_running(s: scheduler_pb2_grpc.SchedulerStub) -> bool:
                    job = await s.GetJob(scheduler_pb2.JobRef(job_id=runner.job_id))
                    return job.state == scheduler_pb2.JOB_STATE_RUNNING

                await poll(stub, is_running, 20, "the first job running")
                queued = [(await stub.SubmitJob(submit(record_run, size))).job for size in sizes]
                before = await stub.GetClusterState(scheduler_pb2.ClusterStateRequest())
                assert len(before.classes) == 1  # the default: one FIFO class
                assert before.running == 1 and before.queued == len(queued)
                assert all(j.class_index == 0 for j in queued)

                # 3. apply the chosen front point from the command line
                started = time.monotonic()
                applied = llmproxy(
                    "search",
                    "apply",
                    record.search_id,
                    "--candidate",
                    chosen.config_hash,
                    "--pool",
                    "default",
                    env=env,
                    timeout_s=60,
                )
                assert f"wfq-{record.search_id}-{chosen.config_hash}" in applied

                async def switched(
                    s: scheduler_pb2_grpc.SchedulerStub,
                ) -> scheduler_pb2.ClusterState | None:
                    state = await s.GetClusterState(scheduler_pb2.ClusterStateRequest())
                    return state if len(state.classes) == config.num_classes else None

                state = await poll(stub, switched, 10, "the new configuration")
                seconds = time.monotonic() - started
                print(f"applied in {seconds:.1f}s (CLI start included)", file=sys.stderr)
                assert [c.size_boundary_seconds for c in state.classes] == list(config.thresholds)
                assert [c.weight for c in state.classes] == pytest.approx(
                    [float(w) for w in config.weights], abs=1e-9
                )
                assert state.policy == f"wfq ({config.num_classes} classes)"
                # nothing dropped: the same jobs, the runner still running on its executor,
                # the queued ones re-classed under the new boundaries, ETAs revised
                assert state.running == 1 and state.queued == len(queued)
                assert [c.queued for c in state.classes] == [1] * config.num_classes
                listed = await stub.ListJobs(scheduler_pb2.ListJobsRequest())
                assert {j.job_id for j in listed.jobs} == {runner.job_id} | {
                    j.job_id for j in queued
                }
                still = await stub.GetJob(scheduler_pb2.JobRef(job_id=runner.job_id))
                assert still.state == scheduler_pb2.JOB_STATE_RUNNING
                assert list(still.allocated_to) == ["local"] and still.restarts == 0
                for index, job in enumerate(queued):
                    now = await stub.GetJob(scheduler_pb2.JobRef(job_id=job.job_id))
                    assert now.state == scheduler_pb2.JOB_STATE_QUEUED
                    assert now.class_index == index == config.class_of(job.size_seconds)
                    assert now.prediction.reason == "configuration changed"
                    assert now.first_prediction == job.first_prediction

                # 4. every job then runs to completion, exactly once
                gate.touch()
                for job in (runner, *queued):

                    async def completed(
                        s: scheduler_pb2_grpc.SchedulerStub, job_id: str = job.job_id
                    ) -> bool:
                        done = await s.GetJob(scheduler_pb2.JobRef(job_id=job_id))
                        return done.state == scheduler_pb2.JOB_STATE_COMPLETED

                    await poll(stub, completed, 30, f"job {job.job_id} completed")
        ran = runs.read_text().split()
        assert sorted(ran) == sorted([runner.job_id, *(j.job_id for j in queued)])
        assert ran[0] == runner.job_id
    finally:
        service.kill()
