"""Runs each assigned job's command as a local process on its GPUs (or slots).

With GPUs the command sees ``CUDA_VISIBLE_DEVICES`` set to its GPU indices; on a machine
without GPUs the executor owns *slots* and the command sees ``LLMPROXY_SLOTS`` instead.
Every command also gets ``LLMPROXY_JOB_ID``. A command runs under ``/bin/sh -c`` in its own
process group, dies with the executor (a lost executor's jobs are requeued elsewhere, so
they must not keep running here), and writes its output to ``<work_dir>/<job_id>.log``.
Exit status 0 is success; anything else fails the job with the status and the log's tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from llmproxy.scheduler.live import Assignment, Progress

__all__ = ["ProcessRunner"]

_TAIL_BYTES = 400


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    gpus: int
    started: float
    log_path: Path
    watcher: asyncio.Task[None]
    ended: Progress | None = None


class ProcessRunner:
    def __init__(self, work_dir: Path, *, use_gpus: bool) -> None:
        self.work_dir = work_dir
        self.use_gpus = use_gpus
        self.changed = asyncio.Event()
        self._jobs: dict[str, _Running] = {}
        self._pending: list[asyncio.Task[None]] = []
        work_dir.mkdir(parents=True, exist_ok=True)

    def running(self) -> set[str]:
        return set(self._jobs) | {t.get_name() for t in self._pending if not t.done()}

    def start(self, assignment: Assignment) -> None:
        task = asyncio.create_task(self._spawn(assignment), name=assignment.job_id)
        self._pending.append(task)

    async def _spawn(self, assignment: Assignment) -> None:
        indices = ",".join(str(i) for i in assignment.gpu_indices)
        env = dict(os.environ)
        env["LLMPROXY_JOB_ID"] = assignment.job_id
        env["CUDA_VISIBLE_DEVICES" if self.use_gpus else "LLMPROXY_SLOTS"] = indices
        if not self.use_gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # slots are not GPUs: hide any GPU
        log_path = self.work_dir / f"{assignment.job_id}.log"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "llmproxy.platform.die_with_parent",
                "/bin/sh",
                "-c",
                assignment.command or "true",
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        watcher = asyncio.create_task(self._watch(assignment.job_id, process))
        self._jobs[assignment.job_id] = _Running(
            process, max(len(assignment.gpu_indices), 1), time.monotonic(), log_path, watcher
        )
        self._pending = [t for t in self._pending if not t.done()]

    async def _watch(self, job_id: str, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        job = self._jobs.get(job_id)
        if job is None:
            return
        attained = job.gpus * (time.monotonic() - job.started)
        if code == 0:
            job.ended = Progress(job_id, attained, finished=True)
        else:
            tail = _tail(job.log_path)
            job.ended = Progress(
                job_id, attained, failed=True, error=f"exit status {code}: {tail}".strip()
            )
        self.changed.set()

    def stop(self, job_id: str) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        if job.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.process.pid, signal.SIGKILL)
        job.watcher.cancel()

    def reports(self) -> list[Progress]:
        now = time.monotonic()
        reports = [
            job.ended or Progress(job_id, job.gpus * (now - job.started))
            for job_id, job in self._jobs.items()
        ]
        starting = {t.get_name() for t in self._pending if not t.done()} - set(self._jobs)
        return reports + [Progress(job_id, 0.0) for job_id in sorted(starting)]

    def forget(self, job_ids: set[str]) -> None:
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is not None and job.ended is not None:
                del self._jobs[job_id]

    def seconds_to_next_end(self) -> float | None:
        return None

    async def close(self) -> None:
        for task in self._pending:
            with contextlib.suppress(BaseException):
                await task
        for job_id in list(self._jobs):
            self.stop(job_id)


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()[-_TAIL_BYTES:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip().replace("\n", " | ")
