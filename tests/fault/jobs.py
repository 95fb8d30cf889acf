"""GPU jobs through the faults: submitted to the scheduler while services die, run by a
real executor process, and afterwards none lost and none run twice.

A process executor (``llmproxy executor run --kind process``: the command users run on a
GPU node, here owning CPU *slots*) runs every job as a shell command that appends
``<job id> start`` and, a second later, ``<job id> done`` to one file. A submitter sends a
job every ``interval_s`` with its own idempotency key and, on an error, sends the *same*
request again (the way a careful client does) until it is accepted or ``give_up_s`` passes.

Afterwards every accepted job must be COMPLETED with exactly one ``done`` line; a job the
scheduler holds that no submission was told about, or a ``done`` line of an unknown job,
would be a job created twice or behind the caller's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from llmproxy.platform.processes import spawn, stop_process
from llmproxy.v1 import scheduler_pb2, scheduler_pb2_grpc

__all__ = ["JobLoad", "JobSubmission"]

POOL = "fault-gpu"
#: GPU-seconds of each job (one slot, about one wall second)
JOB_SECONDS = 1.0
_TERMINAL = {
    scheduler_pb2.JOB_STATE_COMPLETED,
    scheduler_pb2.JOB_STATE_FAILED,
    scheduler_pb2.JOB_STATE_CANCELLED,
}


@dataclass(slots=True)
class JobSubmission:
    key: str
    started: float
    ended: float = 0.0
    job_id: str = ""
    attempts: int = 0
    #: error code -> times, for attempts that failed before one was accepted
    errors: Counter[str] = field(default_factory=Counter)
    #: the last error, when it was never accepted
    gave_up: str = ""


class JobLoad:
    """An executor process plus a submitter; :meth:`check` says what became of each job."""

    def __init__(
        self,
        scheduler_address: str,
        work_dir: Path,
        *,
        environ: dict[str, str],
        interval_s: float = 2.0,
        give_up_s: float = 30.0,
        slots: int = 2,
    ) -> None:
        self._address = scheduler_address
        self._dir = work_dir
        self._environ = environ
        self._interval = interval_s
        self._give_up = give_up_s
        self._slots = slots
        self.runs_file = work_dir / "runs.txt"
        self.submissions: list[JobSubmission] = []
        self._executor: subprocess.Popen[bytes] | None = None
        self._channel = grpc.aio.insecure_channel(scheduler_address)
        self._stub = scheduler_pb2_grpc.SchedulerStub(self._channel)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def _command(self) -> str:
        runs = self.runs_file
        return (
            f'echo "$LLMPROXY_JOB_ID start" >> {runs}; sleep {JOB_SECONDS:g}; '
            f'echo "$LLMPROXY_JOB_ID done" >> {runs}'
        )

    def start_executor(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self.runs_file.touch()
        cli = Path(sys.executable).parent / "llmproxy"
        argv = [str(cli)] if cli.exists() else [sys.executable, "-m", "llmproxy.cli"]
        self._executor = spawn(
            [
                *argv,
                "executor",
                "run",
                "--scheduler",
                self._address,
                "--id",
                "fault-executor",
                "--pool",
                POOL,
                "--kind",
                "process",
                "--slots",
                str(self._slots),
                "--work-dir",
                str(self._dir / "logs"),
            ],
            env=self._environ,
            log_path=self._dir / "executor.log",
        )

    async def wait_for_executor(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                state = await self._stub.GetClusterState(
                    scheduler_pb2.ClusterStateRequest(pool=POOL), timeout=5
                )
                if any(e.alive for e in state.executors):
                    return
            if self._executor is not None and self._executor.poll() is not None:
                raise AssertionError(f"the executor exited:\n{self.executor_log()}")
            await asyncio.sleep(0.2)
        raise AssertionError(f"the executor never registered:\n{self.executor_log()}")

    def executor_log(self, lines: int = 30) -> str:
        try:
            text = (self._dir / "executor.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        self._task = asyncio.create_task(self._submit_forever())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        await self.stop()
        await self._channel.close()
        if self._executor is not None:
            await asyncio.to_thread(stop_process, self._executor, timeout_s=10)

    async def _submit_forever(self) -> None:
        for n in itertools.count():
            if self._stopping.is_set():
                return
            submission = JobSubmission(
                key=f"fault-{uuid.uuid4().hex[:12]}", started=time.monotonic()
            )
            self.submissions.append(submission)
            await self._submit(submission, n)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def _submit(self, submission: JobSubmission, n: int) -> None:
        request = scheduler_pb2.SubmitJobRequest(
            kind=scheduler_pb2.JOB_KIND_GPU,
            pool=POOL,
            owner="acme",
            gpu_demand=1,
            size_seconds=JOB_SECONDS,
            features=scheduler_pb2.JobFeatures(model_name="fault", user=f"u{n % 3}"),
            command=self._command(),
            idempotency_key=submission.key,
        )
        while True:
            submission.attempts += 1
            try:
                reply = await self._stub.SubmitJob(request, timeout=5)
            except grpc.aio.AioRpcError as exc:
                submission.errors[exc.code().name] += 1
                if time.monotonic() - submission.started > self._give_up:
                    submission.gave_up = f"{exc.code().name}: {exc.details()}"
                    submission.ended = time.monotonic()
                    return
                await asyncio.sleep(0.5)
                continue
            submission.job_id = reply.job.job_id
            submission.ended = time.monotonic()
            return

    async def check(self, timeout_s: float = 90.0) -> dict[str, Any]:
        """Wait (bounded) for every accepted job to end, then compare with the runs file."""
        accepted = {s.job_id: s for s in self.submissions if s.job_id}
        states: dict[str, scheduler_pb2.Job] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            for job_id in accepted:
                if job_id in states and states[job_id].state in _TERMINAL:
                    continue
                with contextlib.suppress(grpc.aio.AioRpcError):
                    states[job_id] = await self._stub.GetJob(
                        scheduler_pb2.JobRef(job_id=job_id), timeout=5
                    )
            pending = [j for j in accepted if j not in states or states[j].state not in _TERMINAL]
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        listed = await self._stub.ListJobs(
            scheduler_pb2.ListJobsRequest(pool=POOL, limit=10_000), timeout=10
        )
        await asyncio.sleep(0.2)  # a job's last echo, if its end raced the last poll
        lines = self.runs_file.read_text().split("\n")
        starts = Counter(line.split()[0] for line in lines if line.endswith(" start"))
        dones = Counter(line.split()[0] for line in lines if line.endswith(" done"))
        by_state = Counter(
            scheduler_pb2.JobState.Name(states[j].state) if j in states else "UNKNOWN"
            for j in accepted
        )
        errors: Counter[str] = Counter()
        for s in self.submissions:
            errors.update(s.errors)
        return {
            "submitted": len(self.submissions),
            "accepted": len(accepted),
            "never_accepted": [s.gave_up for s in self.submissions if not s.job_id],
            "retried_submissions": sum(1 for s in self.submissions if s.attempts > 1),
            "submit_errors": dict(errors),
            "states": dict(by_state),
            "not_completed": sorted(
                j
                for j in accepted
                if j not in states or states[j].state != scheduler_pb2.JOB_STATE_COMPLETED
            ),
            "lost": sorted(j for j in accepted if dones[j] == 0),
            "run_twice": sorted(j for j in accepted if dones[j] > 1),
            "started_more_than_once": sorted(j for j in accepted if starts[j] > 1),
            "restarts_reported": sum(states[j].restarts for j in accepted if j in states),
            "unknown_jobs_in_pool": sorted({j.job_id for j in listed.jobs} - set(accepted)),
            "unknown_jobs_run": sorted(set(dones) - set(accepted)),
            "executor_alive": self._executor is not None and self._executor.poll() is None,
        }
