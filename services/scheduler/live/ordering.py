"""Which waiting job starts next, and where: the live scheduler's one start rule, shared by the
real decisions and by the forecast that predicts them.

Live jobs are gangs: a job runs on exactly its demand of GPUs of one executor, from start to
end (a process cannot be resized or paused). WFQ-PCS's class weights are therefore applied
the way packet WFQ applies them to packets: every job gets a virtual finish tag at submission,
``F = max(V, F of its class's previous job) + size / class weight`` (``V``, the pool's virtual
time, is the start tag of the latest job started), and waiting jobs start in tag order, so each
backlogged class receives GPU-seconds in proportion to its weight and, inside a class, jobs
keep their submission order. If the next job fits on no executor's free GPUs, nothing else
starts (head-of-line blocking): a large job is never overtaken for ever, and the order stays
what the forecast predicted. Jobs no live executor could ever hold are skipped.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Forecast", "RunningJob", "StartPlanner", "WaitingJob", "forecast"]


@dataclass(frozen=True, slots=True)
class WaitingJob:
    job_id: str
    seq: int
    #: virtual finish tag: waiting jobs start in (tag, seq) order
    tag: float
    demand: int
    #: believed work left, GPU-seconds
    remaining: float


@dataclass(frozen=True, slots=True)
class RunningJob:
    job_id: str
    executor_id: str
    demand: int
    #: believed finish time, core seconds
    finish: float


class StartPlanner:
    """The waiting jobs of one pool in tag order and the free GPUs of each live executor;
    :meth:`pop_next` applies the start rule once."""

    def __init__(
        self,
        executors: Mapping[str, int],
        waiting: Iterable[WaitingJob],
        running: Iterable[RunningJob] = (),
    ) -> None:
        """``executors`` maps each live executor to its total GPUs; the GPUs of ``running``
        jobs on them are taken."""
        self.free = dict(executors)
        self._largest = max(self.free.values(), default=0)
        for held in running:
            if held.executor_id in self.free:
                self.free[held.executor_id] -= held.demand
        self._queue = deque(sorted(waiting, key=lambda j: (j.tag, j.seq)))

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def pop_next(self) -> tuple[WaitingJob, str] | None:
        """The job to start now and the executor to start it on, or None (nothing fits)."""
        for index, job in enumerate(self._queue):
            if job.demand > self._largest:
                continue  # no live executor is large enough; it waits for one
            executor = self._place(job.demand)
            if executor is None:
                return None
            del self._queue[index]
            self.free[executor] -= job.demand
            return job, executor
        return None

    @property
    def largest(self) -> int:
        """GPUs of the largest live executor."""
        return self._largest

    def append(self, job: WaitingJob) -> None:
        """Queue ``job`` last (it must sort after every waiting job)."""
        self._queue.append(job)

    def release(self, executor_id: str, demand: int) -> None:
        """A job left ``executor_id``, freeing ``demand`` GPUs."""
        if executor_id in self.free:
            self.free[executor_id] += demand

    def _place(self, demand: int) -> str | None:
        """Best fit: the executor with the fewest free GPUs that still hold the job."""
        fits = [(free, name) for name, free in self.free.items() if free >= demand]
        return min(fits)[1] if fits else None


class Forecast:
    """The start rule replayed forward from ``now`` with the believed sizes, no further arrivals
    and the executors as they are; :func:`forecast` runs it once. It can be resumed: a job
    that sorts after every waiting job it has placed is placed by :meth:`extend` exactly as a
    fresh replay with that job would place it (jobs ahead of a job never depend on it)."""

    def __init__(
        self,
        now: float,
        executors: Mapping[str, int],
        running: Sequence[RunningJob],
        waiting: Sequence[WaitingJob],
    ) -> None:
        self.planner = StartPlanner(executors, waiting, running)
        self.result: dict[str, tuple[float | None, float | None]] = {
            job.job_id: (None, job.finish) for job in running
        }
        self.heap = [(job.finish, i, job.executor_id, job.demand) for i, job in enumerate(running)]
        heapq.heapify(self.heap)
        #: earliest believed finish of a running job (+inf when none runs)
        self.first_finish = self.heap[0][0] if self.heap else math.inf
        self.counter = len(self.heap)
        self.t = now

    @property
    def complete(self) -> bool:
        """Every waiting job was placed (none waits for an executor large enough)."""
        return self.planner.waiting == 0

    def run(self) -> None:
        planner, heap = self.planner, self.heap
        while True:
            while (started := planner.pop_next()) is not None:
                job, executor = started
                finish = self.t + job.remaining / job.demand
                self.result[job.job_id] = (self.t, finish)
                heapq.heappush(heap, (finish, self.counter, executor, job.demand))
                self.counter += 1
            if planner.waiting == 0 or not heap:
                break
            self.t = max(self.t, heap[0][0])
            while heap and heap[0][0] <= self.t:
                _, _, executor, demand = heapq.heappop(heap)
                planner.release(executor, demand)

    def extend(self, job: WaitingJob) -> tuple[float | None, float | None]:
        """Place ``job``, which sorts after every job placed so far (requires
        :attr:`complete`); returns its predicted ``(start, completion)``."""
        assert self.complete
        self.planner.append(job)
        self.run()
        return self.result.get(job.job_id, (None, None))


def forecast(
    now: float,
    executors: Mapping[str, int],
    running: Sequence[RunningJob],
    waiting: Sequence[WaitingJob],
) -> dict[str, tuple[float | None, float | None]]:
    """Predicted ``(start, completion)`` of every job, replaying the start rule forward from
    ``now`` with the believed sizes, no further arrivals and the executors as they are.
    Running jobs get ``(None, finish)`` (their start is known); jobs that would never start
    (no executor can hold them) get ``(None, None)``.

    ``executors`` maps each live executor to its total GPUs.
    """
    replay = Forecast(now, executors, running, waiting)
    replay.run()
    result = replay.result
    for job in waiting:
        result.setdefault(job.job_id, (None, None))
    return result
