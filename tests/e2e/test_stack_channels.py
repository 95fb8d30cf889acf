"""End to end through the real stack started by the launcher of ``llmproxy up`` (every
service its own process, real NATS JetStream, a fresh PostgreSQL database; see
``tests/fault/harness.py``): a signed WhatsApp webhook is answered, GPU jobs run on a real
executor process exactly once, and a small PCS search is run and applied to the scheduler.

One stack serves the module (starting it takes most of the time on a loaded machine);
each test then takes well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio

from llmproxy.gateway.fake_upstream import ANSWER
from llmproxy.platform.processes import free_port, spawn, stop_process
from llmproxy.v1 import optimizer_pb2, optimizer_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc
from tests.fault.harness import RunningStack, running_stack
from tests.support.fake_graph import (
    PHONE_NUMBER_ID,
    FakeGraphServer,
    notification,
    signed_headers,
    text_message,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.nats,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(400),
]

SECRET, VERIFY = "e2e-app-secret", "e2e-verify-token"
ALICE = "31600000011"
GOT_IT = "Got it"
POOL = "e2e-gpu"
#: a test's own budget, after the shared stack is up
TEST_LIMIT_S = 60.0


@dataclass
class E2E:
    stack: RunningStack
    graph: FakeGraphServer
    webhook: str
    work: Path
    executor: subprocess.Popen[bytes]

    @property
    def scheduler(self) -> scheduler_pb2_grpc.SchedulerStub:
        return scheduler_pb2_grpc.SchedulerStub(self._channel("scheduler"))

    @property
    def optimizer(self) -> optimizer_pb2_grpc.OptimizerStub:
        return optimizer_pb2_grpc.OptimizerStub(self._channel("optimizer"))

    def _channel(self, name: str) -> grpc.aio.Channel:
        channels: dict[str, grpc.aio.Channel] = self.__dict__.setdefault("_channels", {})
        if name not in channels:
            channels[name] = grpc.aio.insecure_channel(self.stack.stack.addresses[name])
        return channels[name]

    async def close(self) -> None:
        for channel in self.__dict__.get("_channels", {}).values():
            await channel.close()


def _cli() -> list[str]:
    cli = Path(sys.executable).parent / "llmproxy"
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "llmproxy.cli"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def e2e(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[E2E]:
    work = tmp_path_factory.mktemp("e2e")
    webhook_port = free_port()
    with FakeGraphServer() as graph:
        channel_env = {
            # the launcher turns the webhook on when WhatsApp credentials are set, with the
            # key it made for the local CLI (tenant "local")
            "LLMPROXY_WHATSAPP_APP_SECRET": SECRET,
            "LLMPROXY_WHATSAPP_VERIFY_TOKEN": VERIFY,
            "LLMPROXY_WHATSAPP_ACCESS_TOKEN": "graph-token",
            "LLMPROXY_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "LLMPROXY_GRAPH_BASE_URL": graph.base_url,
            "LLMPROXY_WEBHOOK_PORT": str(webhook_port),
            "LLMPROXY_INBOX_POLL_INTERVAL": "200ms",
            "LLMPROXY_MAX_ANSWER_TOKENS": "64",
        }
        async with running_stack(work / "stack", extra_env=channel_env) as stack:
            (work / "jobs").mkdir()
            executor = spawn(
                [*_cli(), "executor", "run", "--scheduler", stack.stack.addresses["scheduler"],
                 "--id", "e2e-executor", "--pool", POOL, "--kind", "process", "--slots", "2",
                 "--work-dir", str(work / "jobs" / "logs")],
                env=dict(os.environ),
                log_path=work / "jobs" / "executor.log",
            )  # fmt: skip
            running = E2E(
                stack, graph, f"http://127.0.0.1:{webhook_port}/webhook", work, executor
            )
            try:

                async def registered() -> bool:
                    state = await running.scheduler.GetClusterState(
                        scheduler_pb2.ClusterStateRequest(pool=POOL), timeout=5
                    )
                    return any(e.alive for e in state.executors)

                await _until("the executor to register", registered)
                yield running
            finally:
                await running.close()
                await asyncio.to_thread(stop_process, executor, timeout_s=10)


async def _until(what: str, check, timeout_s: float = TEST_LIMIT_S, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(grpc.aio.AioRpcError):
            result = await check()
            if result:
                return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(every)


async def test_a_signed_whatsapp_message_is_answered_through_the_stack(e2e: E2E) -> None:
    began = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as http:
        # Meta's verification handshake
        handshake = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}
        assert (await http.get(e2e.webhook, params=handshake)).text == "42"

        body = notification([text_message(ALICE, "What is the capital of France?",
                                          message_id="wamid.e2e.1")])  # fmt: skip
        # a forged or missing signature is refused and nothing is stored or answered
        forged = await http.post(
            e2e.webhook, content=body, headers={"x-hub-signature-256": "sha256=" + "0" * 64}
        )
        assert forged.status_code == 403
        unsigned = await http.post(
            e2e.webhook, content=body, headers={"content-type": "application/json"}
        )
        assert unsigned.status_code == 401
        assert await e2e.stack.query("select * from whatsapp_messages") == []

        signed = await http.post(e2e.webhook, content=body, headers=signed_headers(body, SECRET))
        assert signed.status_code == 200 and signed.json()["received"] == 1

    async def answered() -> list[str]:
        return [c.text for c in e2e.graph.sent(ALICE) if not c.text.startswith(GOT_IT)]

    assert await _until("the WhatsApp answer", answered) == [ANSWER]
    sent = next(c for c in e2e.graph.sent(ALICE) if c.text == ANSWER)
    assert sent.headers["authorization"] == "Bearer graph-token"
    assert sent.body["context"] == {"message_id": "wamid.e2e.1"}

    # the answer went through the gateway as the launcher's tenant and is in its ledger
    async def ledger() -> list[object]:
        return await e2e.stack.query(
            "select cost_nanousd from usage_records where tenant_id = 'local'"
        )

    (row,) = await _until("the usage row of the WhatsApp answer", ledger)
    assert row["cost_nanousd"] > 0

    async def done() -> bool:
        rows = await e2e.stack.query(
            "select state from whatsapp_messages where message_id = 'wamid.e2e.1'"
        )
        return [r["state"] for r in rows] == ["done"]

    await _until("the message to be done", done)
    assert time.monotonic() - began < TEST_LIMIT_S


async def test_gpu_jobs_submitted_through_the_stack_each_run_exactly_once(e2e: E2E) -> None:
    began = time.monotonic()
    scheduler = e2e.scheduler
    runs = e2e.work / "jobs" / "runs.txt"
    runs.touch()

    def command(tag: str) -> str:
        return f'echo "$LLMPROXY_JOB_ID {tag}" >> {runs}'

    # bad input: a clear error, and nothing is created
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await scheduler.SubmitJob(
            scheduler_pb2.SubmitJobRequest(
                kind=scheduler_pb2.JOB_KIND_GPU, pool=POOL, gpu_demand=1, size_seconds=-5,
                command=command("bad"),
            ),
            timeout=10,
        )  # fmt: skip
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "size_seconds" in (bad.value.details() or "")

    job_ids = []
    for n in range(3):
        reply = await scheduler.SubmitJob(
            scheduler_pb2.SubmitJobRequest(
                kind=scheduler_pb2.JOB_KIND_GPU, pool=POOL, owner="e2e", gpu_demand=1,
                size_seconds=1.0, command=command(f"grpc-{n}"), idempotency_key=f"e2e-{n}",
            ),
            timeout=10,
        )  # fmt: skip
        job_ids.append(reply.job.job_id)
    # the same idempotency key again: the same job, not a second one
    again = await scheduler.SubmitJob(
        scheduler_pb2.SubmitJobRequest(
            kind=scheduler_pb2.JOB_KIND_GPU, pool=POOL, owner="e2e", gpu_demand=1,
            size_seconds=1.0, command=command("grpc-0"), idempotency_key="e2e-0",
        ),
        timeout=10,
    )  # fmt: skip
    assert again.job.job_id == job_ids[0]

    # and one through the CLI a user runs
    address = e2e.stack.stack.addresses["scheduler"]
    submitted = await asyncio.to_thread(
        subprocess.run,
        [*_cli(), "jobs", "submit", "--scheduler", address, "--pool", POOL, "--gpus", "1",
         "--size", "1", "--owner", "e2e", "--json", command("cli")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_ids.append(json.loads(submitted.stdout)["jobId"])

    async def all_completed() -> list[scheduler_pb2.Job]:
        jobs = [
            await scheduler.GetJob(scheduler_pb2.JobRef(job_id=j), timeout=5) for j in job_ids
        ]
        assert not [j for j in jobs if j.state == scheduler_pb2.JOB_STATE_FAILED], jobs
        done = all(j.state == scheduler_pb2.JOB_STATE_COMPLETED for j in jobs)
        return jobs if done else []

    jobs = await _until("the jobs to complete", all_completed)
    assert all(j.started_at.seconds and j.completed_at.seconds for j in jobs)
    lines = runs.read_text().split()
    ran = [lines[i] for i in range(0, len(lines), 2)]
    assert sorted(ran) == sorted(job_ids), "each job ran exactly once"
    listed = await scheduler.ListJobs(scheduler_pb2.ListJobsRequest(pool=POOL), timeout=10)
    assert sorted(j.job_id for j in listed.jobs) == sorted(job_ids)
    assert time.monotonic() - began < TEST_LIMIT_S


async def test_a_small_search_is_run_and_applied_to_the_scheduler(e2e: E2E) -> None:
    began = time.monotonic()
    optimizer, scheduler = e2e.optimizer, e2e.scheduler
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await optimizer.StartSearch(optimizer_pb2.StartSearchRequest(), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    started = await optimizer.StartSearch(
        optimizer_pb2.StartSearchRequest(
            workload=optimizer_pb2.WorkloadSource(
                trace_path="0e4a51", jobs_limit=60, cluster_gpus=64
            ),
            objectives=[
                optimizer_pb2.SEARCH_OBJECTIVE_MEAN_PREDICTION_ERROR,
                optimizer_pb2.SEARCH_OBJECTIVE_MEAN_JCT,
            ],
            population=4,
            generations=2,
            seed=5,
        ),
        timeout=30,
    )

    async def completed() -> optimizer_pb2.Search | None:
        search = await optimizer.GetSearch(
            optimizer_pb2.SearchRef(search_id=started.search_id), timeout=10
        )
        assert search.state != optimizer_pb2.SEARCH_STATE_FAILED, search.error
        return search if search.state == optimizer_pb2.SEARCH_STATE_COMPLETED else None

    search = await _until("the search to complete", completed, timeout_s=45)
    assert search.front and search.evaluated >= 4

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await optimizer.ApplyConfig(
            optimizer_pb2.ApplyConfigRequest(search_id="s-nope", preset="bal"), timeout=10
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    applied = await optimizer.ApplyConfig(
        optimizer_pb2.ApplyConfigRequest(search_id=search.search_id, preset="bal", pool=POOL),
        timeout=10,
    )
    weights = [c.weight for c in applied.config.classes]
    assert applied.policy_id and weights

    # the scheduler received policy.updated and runs the pool with those classes
    async def in_effect() -> bool:
        state = await scheduler.GetClusterState(
            scheduler_pb2.ClusterStateRequest(pool=POOL), timeout=5
        )
        return [round(c.weight, 9) for c in state.classes] == [round(w, 9) for w in weights]

    await _until("the scheduler to apply the configuration", in_effect, timeout_s=20)
    (row,) = await e2e.stack.query(
        "select policy_id from scheduler_pool_configs where pool = $1", POOL
    )
    assert row["policy_id"] == applied.policy_id
    assert time.monotonic() - began < TEST_LIMIT_S
