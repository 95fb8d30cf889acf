"""The live scheduler as a real process (`llmproxy serve scheduler`) on real NATS and a real
database, with real executor agents running real job processes."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.bus.port import Delivery, Envelope
from llmproxy.platform.bus.subjects import POLICY_UPDATED
from llmproxy.platform.events import decode_event, new_event_meta, publish_event
from llmproxy.scheduler.client import LlmRequestQueue
from llmproxy.scheduler.executors import ExecutorAgent, ProcessRunner
from llmproxy.v1 import events_pb2, scheduler_pb2, scheduler_pb2_grpc
from tests.support.services import LLMPROXY, ServiceProcess, service_env

pytestmark = pytest.mark.nats

Stub = scheduler_pb2_grpc.SchedulerStub


def scheduler_process(nats_url: str, db_url: str, tmp_path: Path) -> ServiceProcess:
    env = service_env(
        NATS_URL=nats_url,
        DATABASE_URL=db_url,
        LLMPROXY_HEARTBEAT_INTERVAL="0.2s",
        LLMPROXY_EXECUTOR_TIMEOUT="1.5s",
    )
    return ServiceProcess("scheduler", env, tmp_path / "scheduler.log")


@contextlib.asynccontextmanager
async def running_agent(
    address: str, work_dir: Path, *, executor_id: str = "local", slots: int = 2
) -> AsyncIterator[ExecutorAgent]:
    """A process executor in this test's event loop; its jobs are real child processes."""
    agent = ExecutorAgent(
        address,
        ProcessRunner(work_dir, use_gpus=False),
        executor_id=executor_id,
        pool="default",
        gpus=slots,
        kind="process",
    )
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)


async def wait_for(
    stub: Stub, job_id: str, done: Callable[[scheduler_pb2.Job], bool], within: float = 20
) -> scheduler_pb2.Job:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        with contextlib.suppress(grpc.aio.AioRpcError):
            job = await stub.GetJob(scheduler_pb2.JobRef(job_id=job_id), timeout=5)
            if done(job):
                return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} never reached the state; last: {job}")
        await asyncio.sleep(0.1)


async def wait_for_executor(stub: Stub, executor_id: str, alive: bool = True) -> None:
    for _ in range(200):
        with contextlib.suppress(grpc.aio.AioRpcError):
            state = await stub.GetClusterState(scheduler_pb2.ClusterStateRequest(), timeout=5)
            if any(e.executor_id == executor_id and e.alive == alive for e in state.executors):
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"executor {executor_id} never became alive={alive}")


def submit_request(
    command: str, size: float = 1.0, **fields: object
) -> scheduler_pb2.SubmitJobRequest:
    values: dict[str, object] = {"pool": "default", "gpu_demand": 1, "size_seconds": size}
    values.update(fields, command=command)
    return scheduler_pb2.SubmitJobRequest(**values)  # type: ignore[arg-type]


def is_state(state: int) -> Callable[[scheduler_pb2.Job], bool]:
    return lambda job: job.state == state


async def test_a_job_runs_on_a_process_executor_with_its_slots_and_every_change_is_announced(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()
    bus = await JetStreamBus.connect(nats_url, name="test-observer")
    seen: list[tuple[str, events_pb2.JobEvent]] = []

    async def observe(envelope: Envelope) -> None:
        seen.append((envelope.subject, decode_event(envelope, events_pb2.JobEvent)))

    await bus.subscribe("job.>", observe, consumer="observer", delivery=Delivery.BROADCAST)
    out = tmp_path / "out"
    out.mkdir()
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            async with running_agent(service.address, tmp_path / "jobs"):
                await wait_for_executor(stub, "local")
                reply = await stub.SubmitJob(
                    submit_request(f'echo "$LLMPROXY_SLOTS" > {out}/"$LLMPROXY_JOB_ID"', 0.5)
                )
                job = reply.job
                assert job.prediction.HasField("predicted_completion")
                assert job.prediction.reason == "submitted"

                states = []
                async for update in stub.WatchJob(scheduler_pb2.JobRef(job_id=job.job_id)):
                    states.append(update.state)
                assert states[-1] == scheduler_pb2.JOB_STATE_COMPLETED
                assert scheduler_pb2.JOB_STATE_RUNNING in states
            assert (out / job.job_id).read_text().strip() in {"0", "1"}
            finished = await stub.GetJob(scheduler_pb2.JobRef(job_id=job.job_id))
            assert finished.actual_size_seconds > 0
            assert finished.first_prediction.reason == "submitted"
        for _ in range(50):
            subjects = {subject for subject, event in seen if event.job.job_id == job.job_id}
            if "job.completed" in subjects:
                break
            await asyncio.sleep(0.1)
        assert {"job.submitted", "job.estimated", "job.started", "job.completed"} <= subjects
    finally:
        await bus.close()
        service.kill()


async def test_bad_input_is_refused_naming_the_problem_and_changes_nothing(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            async with running_agent(service.address, tmp_path / "jobs", slots=2):
                await wait_for_executor(stub, "local")
                cases = [
                    (submit_request("true", -5), grpc.StatusCode.INVALID_ARGUMENT, "size_seconds"),
                    (
                        submit_request("true", 1e12),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "size_seconds",
                    ),
                    (
                        submit_request("true", gpu_demand=0),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "gpu_demand",
                    ),
                    (
                        scheduler_pb2.SubmitJobRequest(
                            pool="default", gpu_demand=3, size_seconds=1
                        ),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "largest executor",
                    ),
                    (
                        scheduler_pb2.SubmitJobRequest(pool="mars", gpu_demand=1, size_seconds=1),
                        grpc.StatusCode.NOT_FOUND,
                        "unknown pool 'mars'",
                    ),
                    (
                        scheduler_pb2.SubmitJobRequest(pool="default", gpu_demand=1),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "size_seconds",
                    ),
                    (
                        submit_request("true", share="tenant:a", share_weight=-1),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "share_weight",
                    ),
                    (
                        submit_request("true", share_weight=2),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "a weight needs a share",
                    ),
                    (
                        submit_request(
                            "true", features=scheduler_pb2.JobFeatures(extra={"__share": "x"})
                        ),
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "reserved",
                    ),
                ]
                for request, code, words in cases:
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await stub.SubmitJob(request)
                    assert caught.value.code() == code, request
                    assert words in (caught.value.details() or ""), caught.value.details()
                for call in (stub.GetJob, stub.CancelJob):
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await call(scheduler_pb2.JobRef(job_id="no-such-job"))
                    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
                    assert "no-such-job" in (caught.value.details() or "")
                listed = await stub.ListJobs(scheduler_pb2.ListJobsRequest())
                assert list(listed.jobs) == []
    finally:
        service.kill()


async def test_submitting_twice_with_one_idempotency_key_gives_one_job(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            async with running_agent(service.address, tmp_path / "jobs", slots=1):
                await wait_for_executor(stub, "local")
                request = submit_request("sleep 0.2", 1.0, idempotency_key="nightly-42")
                first = (await stub.SubmitJob(request)).job
                second = (await stub.SubmitJob(request)).job
                assert first.job_id == second.job_id
                await wait_for(stub, first.job_id, is_state(scheduler_pb2.JOB_STATE_COMPLETED))
                third = (await stub.SubmitJob(request)).job  # after it ended: still the same
                assert third.job_id == first.job_id
                listed = await stub.ListJobs(scheduler_pb2.ListJobsRequest())
                assert [j.job_id for j in listed.jobs] == [first.job_id]
    finally:
        service.kill()


async def test_a_killed_and_restarted_scheduler_loses_and_duplicates_no_job(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()
    runs = tmp_path / "runs.txt"
    command = f'sleep 0.8; echo "$LLMPROXY_JOB_ID" >> {runs}'
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            async with running_agent(service.address, tmp_path / "jobs", slots=2):
                await wait_for_executor(stub, "local")
                ids = [
                    (await stub.SubmitJob(submit_request(command, 1.6))).job.job_id
                    for _ in range(5)
                ]
                await wait_for(stub, ids[0], is_state(scheduler_pb2.JOB_STATE_RUNNING))
                before = {
                    j.job_id: j for j in (await stub.ListJobs(scheduler_pb2.ListJobsRequest())).jobs
                }

                service.kill()  # SIGKILL: no drain, no goodbye
                await asyncio.sleep(1.0)  # the running jobs finish while it is down
                service.start()

                listed = await stub.ListJobs(
                    scheduler_pb2.ListJobsRequest(), wait_for_ready=True, timeout=20
                )
                after = {j.job_id: j for j in listed.jobs}
                assert set(after) == set(before) == set(ids)
                for job_id in ids:
                    assert after[job_id].first_prediction == before[job_id].first_prediction
                for job_id in ids:
                    done = await wait_for(
                        stub, job_id, is_state(scheduler_pb2.JOB_STATE_COMPLETED), 30
                    )
                    assert done.restarts == 0  # never requeued: the executor was not lost
        assert sorted(runs.read_text().split()) == sorted(ids)  # each ran exactly once
    finally:
        service.kill()


async def test_an_executor_killed_mid_job_has_its_job_requeued_and_run_elsewhere(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()
    marker = tmp_path / "first-run"
    # the first run marks itself and hangs; a second run finds the mark and succeeds
    command = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exec sleep 60"
    doomed = subprocess.Popen(  # noqa: ASYNC220 (started once, before any awaiting)
        [
            LLMPROXY,
            "executor",
            "run",
            "--scheduler",
            service.address,
            "--id",
            "doomed",
            "--slots",
            "1",
            "--work-dir",
            str(tmp_path / "doomed"),
        ],
        env=service_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            await wait_for_executor(stub, "doomed")
            job = (await stub.SubmitJob(submit_request(command, 2.0))).job
            running = await wait_for(stub, job.job_id, is_state(scheduler_pb2.JOB_STATE_RUNNING))
            assert list(running.allocated_to) == ["doomed"]
            for _ in range(50):
                if marker.exists():
                    break
                await asyncio.sleep(0.1)

            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            requeued = await wait_for(stub, job.job_id, lambda j: j.restarts == 1)
            assert requeued.state == scheduler_pb2.JOB_STATE_PREEMPTED
            assert requeued.prediction.reason == "executor doomed lost"
            assert not requeued.prediction.HasField("predicted_completion")  # no capacity left

            async with running_agent(service.address, tmp_path / "jobs", executor_id="rescue"):
                done = await wait_for(
                    stub, job.job_id, is_state(scheduler_pb2.JOB_STATE_COMPLETED), 20
                )
            assert list(done.allocated_to) == ["rescue"]  # the executor that ran it
            assert done.restarts == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            doomed.kill()
        service.kill()


async def test_a_wfq_configuration_published_on_the_bus_is_applied_live(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()
    bus = await JetStreamBus.connect(nats_url, name="test-optimizer")
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            async with running_agent(service.address, tmp_path / "jobs", slots=1):
                await wait_for_executor(stub, "local")
                big = [
                    (await stub.SubmitJob(submit_request("sleep 30", 1000))).job for _ in range(2)
                ]
                small = (await stub.SubmitJob(submit_request("sleep 30", 10))).job
                old_eta = small.prediction.predicted_completion.ToSeconds()

                event = events_pb2.PolicyUpdated(
                    meta=new_event_meta("test"),
                    policy_id="balanced-1",
                    scheduler_pool="default",
                    wfq=events_pb2.WfqConfig(
                        classes=[
                            events_pb2.WfqClass(size_boundary_seconds=100, weight=0.5),
                            events_pb2.WfqClass(size_boundary_seconds=math.inf, weight=0.5),
                        ]
                    ),
                )
                await publish_event(bus, POLICY_UPDATED, event)

                revised = await wait_for(
                    stub,
                    small.job_id,
                    lambda j: j.prediction.reason == "configuration changed",
                )
                assert revised.class_index == 0
                # it now goes before the second large job: about 1000 s sooner
                assert revised.prediction.predicted_completion.ToSeconds() < old_eta - 900
                state = await stub.GetClusterState(scheduler_pb2.ClusterStateRequest())
                assert [c.weight for c in state.classes] == [0.5, 0.5]
                listed = await stub.ListJobs(scheduler_pb2.ListJobsRequest())
                assert {j.job_id for j in listed.jobs} == {small.job_id, *(b.job_id for b in big)}
                running = await stub.GetJob(scheduler_pb2.JobRef(job_id=big[0].job_id))
                assert running.state == scheduler_pb2.JOB_STATE_RUNNING
                for job in (*big, small):
                    await stub.CancelJob(scheduler_pb2.JobRef(job_id=job.job_id))
    finally:
        await bus.close()
        service.kill()


async def test_a_per_job_gpu_cap_published_by_the_optimizer_clips_demands_and_survives_restarts(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()
    bus = await JetStreamBus.connect(nats_url, name="test-optimizer")

    def policy(policy_id: str, cap: int) -> events_pb2.PolicyUpdated:
        return events_pb2.PolicyUpdated(
            meta=new_event_meta("test"),
            policy_id=policy_id,
            scheduler_pool="default",
            wfq=events_pb2.WfqConfig(
                classes=[events_pb2.WfqClass(size_boundary_seconds=math.inf, weight=1.0)],
                max_job_gpus=cap,
            ),
        )

    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            async with running_agent(service.address, tmp_path / "jobs", slots=4):
                await wait_for_executor(stub, "local")
                first = (await stub.SubmitJob(submit_request("sleep 30", 120, gpu_demand=4))).job
                waiting = (await stub.SubmitJob(submit_request("sleep 30", 400, gpu_demand=4))).job
                assert waiting.gpu_demand == 4

                await publish_event(bus, POLICY_UPDATED, policy("bad-cap", -1))  # ignored
                await publish_event(bus, POLICY_UPDATED, policy("capped", 2))
                revised = await wait_for(stub, waiting.job_id, lambda j: j.gpu_demand == 2)
                assert revised.prediction.reason == "configuration changed"
                # the same work on half the GPUs: it runs twice as long as first predicted
                old = waiting.prediction
                new = revised.prediction
                old_run = old.predicted_completion.ToSeconds() - old.predicted_start.ToSeconds()
                new_run = new.predicted_completion.ToSeconds() - new.predicted_start.ToSeconds()
                assert new_run == pytest.approx(2 * old_run, abs=1.5)
                running = await stub.GetJob(scheduler_pb2.JobRef(job_id=first.job_id))
                assert running.gpu_demand == 4  # a running job keeps its GPUs
                later = (await stub.SubmitJob(submit_request("sleep 30", 40, gpu_demand=4))).job
                assert later.gpu_demand == 2

                service.kill()
                service.start()
                again = (
                    await stub.SubmitJob(
                        submit_request("sleep 30", 40, gpu_demand=3),
                        wait_for_ready=True,
                        timeout=20,
                    )
                ).job
                assert again.gpu_demand == 2  # the cap came back with the configuration
                for job in (first, waiting, later, again):
                    await stub.CancelJob(scheduler_pb2.JobRef(job_id=job.job_id))
    finally:
        await bus.close()
        service.kill()


async def test_the_gateway_hook_queues_llm_requests_on_a_backends_slots_with_etas(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()
    try:
        async with LlmRequestQueue(service.address, backend="smollm", slots=2) as queue:
            tickets = [
                await queue.admit(tenant=tenant, output_tokens=100, seconds_per_token=0.05)
                for tenant in ("acme", "globex", "acme")
            ]
            assert [t.size_seconds for t in tickets] == [5.0, 5.0, 5.0]
            first, second, third = tickets
            assert first.predicted_completion is not None and third.predicted_start is not None
            # two slots: the third waits for the first to end
            assert third.predicted_start >= first.predicted_completion - timedelta(seconds=0.5)

            await asyncio.wait_for(queue.wait_turn(first), 5)
            await asyncio.wait_for(queue.wait_turn(second), 5)
            with pytest.raises(asyncio.TimeoutError):
                await queue.wait_turn(third, max_wait=0.5)

            await queue.finish(first)
            await asyncio.wait_for(queue.wait_turn(third), 5)  # the freed slot goes to it
            await queue.finish(second)
            await queue.finish(third, failed=True, error="model crashed")

            async with grpc.aio.insecure_channel(service.address) as channel:
                stub = Stub(channel)
                done = await wait_for(
                    stub, first.job_id, is_state(scheduler_pb2.JOB_STATE_COMPLETED)
                )
                assert done.kind == scheduler_pb2.JOB_KIND_LLM_REQUEST
                assert done.owner == "acme"
                # read back from the database: the tenant's share and weight were stored
                assert (done.share, done.share_weight) == ("tenant:acme", 1.0)
                assert dict(done.features.extra) == {}
                failed = await wait_for(
                    stub, third.job_id, is_state(scheduler_pb2.JOB_STATE_FAILED)
                )
                assert failed.error == "model crashed"
                state = await stub.GetClusterState(
                    scheduler_pb2.ClusterStateRequest(pool="llm:smollm")
                )
                assert state.capacity == 2
    finally:
        service.kill()


async def test_the_repository_writes_and_reads_back_the_queue_on_both_databases(
    db_url: str,
) -> None:
    """Upserts (one cached statement per table, rows as parameters), the prediction history
    and fair shares round-trip on SQLite and PostgreSQL alike."""
    from sqlalchemy import func, select

    from llmproxy.platform.db import create_engine, session_factory
    from llmproxy.platform.db.models import SchedulerPrediction
    from llmproxy.scheduler.live import JobState, LiveScheduler, Progress, SubmitSpec
    from llmproxy.scheduler.repository import SchedulerRepository
    from llmproxy.scheduler.timebase import TimeBase

    engine = create_engine(db_url)
    try:
        sessions = session_factory(engine)
        time_base = TimeBase()
        repository = SchedulerRepository(sessions, time_base)
        core = LiveScheduler(executor_timeout=60.0)
        now = time_base.now()
        await repository.save(core.register_executor("e", "p", 1, "simulated", now))
        for i in range(600):  # more rows than one upsert chunk
            spec = SubmitSpec(
                job_id=f"j{i}", pool="p", demand=1, size=2.0, owner="acme",
                share="tenant:acme" if i % 2 else "", share_weight=2.0 if i % 2 else 0.0,
                features={"model_name": "m"},
            )  # fmt: skip
            await repository.save(core.submit(spec, now))
        changes, _ = core.heartbeat("e", [Progress("j0", 2.0, finished=True)], now + 2.0)
        await repository.save(changes)

        state = await repository.load()
        loaded = {j.job_id: j for j in state.jobs}
        assert set(loaded) == {j.job_id for j in core.active_jobs()}
        for job in core.active_jobs():
            back = loaded[job.job_id]
            assert (back.share, back.share_weight, back.features) == (
                job.share,
                job.share_weight,
                {"model_name": "m"},
            )
            assert back.state == job.state and back.seq == job.seq
            assert back.prediction is not None and job.prediction is not None
            assert abs(back.prediction.completion - job.prediction.completion) < 1e-3
        done = await repository.get("j0")
        assert done is not None and done.state is JobState.COMPLETED
        async with sessions() as session:
            revisions = await session.scalar(select(func.count()).select_from(SchedulerPrediction))
        assert revisions >= 600  # one per submission at least, plus the revisions
    finally:
        await engine.dispose()
