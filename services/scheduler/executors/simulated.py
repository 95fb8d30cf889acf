"""Runs jobs in simulation, in accelerated time: nothing executes, each job just takes as
long as its true work needs on its GPUs.

A job's true work is written in its command as ``sim:<GPU-seconds>`` (a trace replay puts
the trace's actual size there, while the scheduler may only know an estimate); without it the
assignment's believed remaining work is used. A job on ``g`` GPUs does ``g x time_scale``
GPU-seconds of work per wall second, the same scale the scheduler runs at.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmproxy.scheduler.live import Assignment, Progress

__all__ = ["SimulatedRunner", "true_work"]

PREFIX = "sim:"


def true_work(assignment: Assignment) -> float:
    """The work a simulated job really needs, GPU-seconds."""
    command = assignment.command.strip()
    if command.startswith(PREFIX):
        try:
            return max(float(command[len(PREFIX) :]), 0.0)
        except ValueError:
            pass
    return max(assignment.remaining, 0.0)


@dataclass
class _Job:
    rate: float  # GPU-seconds of work per wall second
    started: float
    work: float
    ended: bool = False

    def attained(self, now: float) -> float:
        return min(self.rate * (now - self.started), self.work)

    def end_time(self) -> float:
        return self.started + self.work / self.rate


class SimulatedRunner:
    def __init__(
        self, *, time_scale: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.time_scale = time_scale
        self.changed = asyncio.Event()
        self._clock = clock
        self._jobs: dict[str, _Job] = {}

    def running(self) -> set[str]:
        return set(self._jobs)

    def start(self, assignment: Assignment) -> None:
        gpus = max(len(assignment.gpu_indices), 1)
        self._jobs[assignment.job_id] = _Job(
            rate=gpus * self.time_scale, started=self._clock(), work=true_work(assignment)
        )

    def stop(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def reports(self) -> list[Progress]:
        now = self._clock()
        out = []
        for job_id, job in self._jobs.items():
            done = now >= job.end_time()
            out.append(Progress(job_id, job.attained(now), finished=done))
        return out

    def forget(self, job_ids: set[str]) -> None:
        now = self._clock()
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is not None and now >= job.end_time():
                del self._jobs[job_id]

    def seconds_to_next_end(self) -> float | None:
        """Until the next job that has not ended yet ends (ended ones are already in the
        reports being sent)."""
        now = self._clock()
        ends = [j.end_time() for j in self._jobs.values() if j.end_time() > now]
        return min(ends) - now if ends else None

    async def close(self) -> None:
        self._jobs.clear()
