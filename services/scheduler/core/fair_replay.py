"""Fast prediction replay for max-min fair sharing (fluid, linear scaling, no arrivals).

With no arrivals the fair level only rises as jobs leave, so a job whose demand is at or
below the level keeps its whole demand to the end (its finish time is fixed once), and every
other job gets the same level: those jobs progress in lockstep, so they finish in order of
remaining work and their progress is one number, the work each has done since the replay
began (``V``). A step is O(log jobs) instead of a max-min decision over every job, and a
prediction O(jobs ahead x log jobs) instead of O(jobs ahead x jobs).
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np

from .model import SchedulerError

__all__ = ["max_min_completion_time"]

#: the same completion tolerance as the cluster (seconds, relative to the clock)
_TIME_TOLERANCE = 1e-9


def max_min_completion_time(
    *,
    now: float,
    ids: np.ndarray,
    remaining: np.ndarray,
    demand: np.ndarray,
    capacity: Any,
    job_id: int,
) -> float:
    """Completion time of ``job_id`` when the active jobs (believed remaining work, demand
    caps) share ``capacity`` max-min fairly with no further arrivals."""
    hits = np.flatnonzero(ids == job_id)
    if len(hits) == 0:
        raise SchedulerError(f"job {job_id} is not active; nothing to predict")
    target = int(hits[0])
    rem = remaining.tolist()
    dem = demand.tolist()
    n = len(rem)
    capacity = float(capacity)
    # uncapped jobs: by remaining work at the start (they all progress by V) and by demand
    by_work = [(rem[i], i) for i in range(n)]
    by_demand = [(dem[i], i) for i in range(n)]
    heapq.heapify(by_work)
    heapq.heapify(by_demand)
    capped = [False] * n
    finished = [False] * n
    fixed: list[tuple[float, int]] = []  # (finish time, index) of capped jobs
    cap_sum = 0.0
    uncapped = n
    done_work = 0.0  # V: the work every uncapped job has done since the replay began
    t = now
    while True:
        # water-fill: cap every job whose demand fits under the level the others leave
        while uncapped:
            while by_demand and (capped[by_demand[0][1]] or finished[by_demand[0][1]]):
                heapq.heappop(by_demand)
            d, i = by_demand[0]
            if d > (capacity - cap_sum) / uncapped:
                break
            heapq.heappop(by_demand)
            capped[i] = True
            cap_sum += d
            uncapped -= 1
            end = t + (rem[i] - done_work) / d
            if i == target:
                return end  # a capped job keeps its demand to the end
            heapq.heappush(fixed, (end, i))
        level = (capacity - cap_sum) / uncapped if uncapped else 0.0
        while by_work and (capped[by_work[0][1]] or finished[by_work[0][1]]):
            heapq.heappop(by_work)
        next_fixed = fixed[0][0] if fixed else math.inf
        next_shared = t + (by_work[0][0] - done_work) / level if by_work and level > 0 else math.inf
        t_next = min(next_fixed, next_shared)
        if math.isinf(t_next):
            raise SchedulerError(f"job {job_id} never gets a GPU in the replay")
        done_work += level * (t_next - t)
        t = t_next
        limit = t + _TIME_TOLERANCE * max(1.0, abs(t))
        while fixed and fixed[0][0] <= limit:
            _, i = heapq.heappop(fixed)
            finished[i] = True
            cap_sum -= dem[i]
        while by_work and level > 0:
            work, i = by_work[0]
            if capped[i] or finished[i]:
                heapq.heappop(by_work)
                continue
            if t + (work - done_work) / level > limit:
                break
            heapq.heappop(by_work)
            finished[i] = True
            uncapped -= 1
            if i == target:
                return t
