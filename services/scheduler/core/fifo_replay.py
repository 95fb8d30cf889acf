"""Fast prediction replay for policies that serve weighted classes, FIFO inside each class
(WFQ-PCS; FIFO is its one-class case), in the fluid model with linear scaling.

The straightforward replay (:func:`~.predictor.replay_completion_time`) recomputes every
job's allocation at every completion: O(active jobs) numpy work per step. A
:class:`FifoClassesForecast` keeps what the structure of these policies makes true, and
touches only queue heads:

* inside a class the running jobs are a prefix of its queue; all hold their whole demand but
  the last, which takes what the class share leaves (the *partial* job);
* with no arrivals, water-filling levels only rise as class demands fall, so a job that holds
  its whole demand keeps it to the end: its finish time is fixed once, and one heap of those
  times orders the completions of every class;
* a completion in a class whose demand stays above its share changes no share, so the
  water-fill is redone only when a class's demand drops to its share or below.

A step costs O(log running jobs + classes), whatever the queue lengths.

The forecast can also take arrivals (:meth:`FifoClassesForecast.admit`), so one forecast can
serve the predictions of a whole simulation: a job that arrived at ``a`` joins a forecast
already run ahead to ``now > a`` only if its class was *saturated* (demand above its share)
all through ``[a, now)``: then the job, last in its class, would have got nothing and changed
no share, so the forecast's history stands. Otherwise the caller rebuilds from the live state.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .model import SchedulerError
from .policies import weighted_water_fill

__all__ = ["FifoClassesForecast", "fifo_classes_completion_time"]

#: the same completion tolerance as the cluster (seconds, relative to the clock)
_TIME_TOLERANCE = 1e-9


class FifoClassesForecast:
    """The future of a set of active jobs with no further arrivals (except those admitted),
    run forward lazily; remembers every finish time it has fixed."""

    def __init__(self, weights: Sequence[float], capacity: Any, now: float) -> None:
        classes = len(weights)
        self.weights = list(weights)
        self.capacity = capacity
        self.now = now
        self._classes = classes
        self._ids: list[list[int]] = [[] for _ in range(classes)]
        self._rem: list[list[float]] = [[] for _ in range(classes)]
        self._dem: list[list[float]] = [[] for _ in range(classes)]
        self._demand = [0.0] * classes  # total demand of the class's unfinished jobs
        self._shares: list[Any] = [0.0] * classes
        self._started = [0] * classes  # next queue index that has never run
        self._used = [0.0] * classes  # demand of the class's jobs that hold their whole demand
        self._part = [-1] * classes  # the partial job's queue index, -1: none
        self._part_rem = [0.0] * classes  # its remaining work at _part_t0
        self._part_t0 = [0.0] * classes
        self._part_rate = [0.0] * classes
        self._part_end = [math.inf] * classes
        self._heap: list[tuple[float, int, int]] = []  # (finish, class, index), whole demand
        #: finish time of every job whose end the forecast has fixed
        self.ends: dict[int, float] = {}
        self._known: set[int] = set()
        # saturation history, for admit(): start of the current unsaturated spell (None:
        # saturated) and end of the last closed one
        self._unsat_since: list[float | None] = [None] * classes
        self._unsat_end = [-math.inf] * classes

    @classmethod
    def build(
        cls,
        *,
        now: float,
        ids: np.ndarray,
        remaining: np.ndarray,
        demand: np.ndarray,
        job_class: np.ndarray,
        weights: Sequence[float],
        capacity: Any,
    ) -> FifoClassesForecast:
        """A forecast of active jobs given as columns in submission order (believed work)."""
        forecast = cls(weights, capacity, now)
        for k in range(forecast._classes):
            members = np.flatnonzero(job_class == k)
            forecast._ids[k] = ids[members].tolist()
            forecast._rem[k] = remaining[members].tolist()
            forecast._dem[k] = demand[members].tolist()
            forecast._demand[k] = float(demand[members].sum())
            forecast._known.update(forecast._ids[k])
        forecast._restart()
        return forecast

    # ----------------------------------------------------------------- arrivals
    def knows(self, job_id: int) -> bool:
        return job_id in self._known

    def admit(
        self, job_id: int, arrival: float, size: float, demand: float, job_class: int
    ) -> bool:
        """Add a job that arrived at ``arrival`` with ``size`` work left; False (and nothing
        changed but the clock) when the forecast already ran past a moment the job would
        have changed."""
        if arrival > self.now:
            self.advance_to(arrival)
        k = job_class
        if arrival < self.now:
            since = self._unsat_since[k]
            if self._unsat_end[k] > arrival or (since is not None and since < self.now):
                return False
        self._ids[k].append(job_id)
        self._rem[k].append(size)
        self._dem[k].append(demand)
        self._known.add(job_id)
        self._demand[k] += demand
        if self._unsat_since[k] is not None:
            if arrival == self.now and self._start_in_free_capacity(k):
                return True
            # the class had room: the shares change, and may fall for other classes
            self._restart()
        return True

    def _start_in_free_capacity(self, k: int) -> bool:
        """Start the job just appended to class ``k`` at once when every class, the newcomer
        included, fits in the capacity: every class then gets its whole demand and no other
        job's share changes, so nothing needs redoing (the common case on a quiet cluster).
        False (nothing changed) otherwise."""
        i = len(self._ids[k]) - 1
        capacity = float(self.capacity)
        if (
            self._part[k] >= 0
            or self._started[k] != i
            or sum(self._demand) > capacity - 1e-9 * max(1.0, capacity)
        ):
            return False
        d = self._dem[k][i]
        end = self.now + self._rem[k][i] / d
        self.ends[self._ids[k][i]] = end
        heapq.heappush(self._heap, (end, k, i))
        self._started[k] = i + 1
        self._used[k] += d
        # the water-fill of demands that fit gives every class exactly its demand
        self._shares = list(self._shares)
        self._shares[k] = self._demand[k]
        return True

    # ----------------------------------------------------------------- queries
    def completion_time(self, job_id: int) -> float:
        """The job's finish time, running the forecast as far as needed."""
        if job_id not in self._known:
            raise SchedulerError(f"job {job_id} is not in the forecast")
        ends = self.ends
        while job_id not in ends:
            if not self._step(math.inf):
                raise SchedulerError(f"job {job_id} never gets a GPU in the replay")
        return ends[job_id]

    def advance_to(self, t: float) -> None:
        """Run the forecast through every event at or before ``t``, then set the clock to it."""
        while self._step(t):
            pass
        self.now = max(self.now, t)

    # ----------------------------------------------------------------- internals
    def _restart(self) -> None:
        """Redo every class's allocation from scratch at ``now`` (after an arrival that
        changed the shares): running jobs go back to the queue with their work left."""
        now = self.now
        running: list[list[tuple[int, float]]] = [[] for _ in range(self._classes)]
        for end, k, i in self._heap:
            running[k].append((i, (end - now) * self._dem[k][i]))
        for k in range(self._classes):
            i = self._part[k]
            if i >= 0:
                running[k].append(
                    (i, self._part_rem[k] - self._part_rate[k] * (now - self._part_t0[k]))
                )
            running[k].sort()
            start = self._started[k]
            ids, rem, dem = self._ids[k], self._rem[k], self._dem[k]
            back = [(ids[i], r, dem[i]) for i, r in running[k]]
            # the running jobs go back, in queue order, to the slots just before the first
            # job never started (finished jobs' slots; the i-th smallest of r distinct indices
            # below ``start`` is at most start - r + i, so no unread slot is overwritten)
            first = start - len(back)
            for offset, (job_id, r, d) in enumerate(back):
                # a forecast fixed under the old shares no longer holds
                self.ends.pop(job_id, None)
                ids[first + offset], rem[first + offset], dem[first + offset] = job_id, r, d
            self._started[k] = first
            self._used[k] = 0.0
            self._part[k] = -1
            self._part_end[k] = math.inf
        self._heap = []
        self._shares = weighted_water_fill(self._demand, self.weights, self.capacity)
        for k in range(self._classes):
            self._fill(k)
        self._note_saturation(range(self._classes))

    def _note_saturation(self, classes: Any) -> None:
        for k in classes:
            unsaturated = self._demand[k] <= self._shares[k]
            since = self._unsat_since[k]
            if unsaturated and since is None:
                self._unsat_since[k] = self.now
            elif not unsaturated and since is not None:
                self._unsat_since[k] = None
                if since < self.now:  # a spell that began and ended at one instant had no room
                    self._unsat_end[k] = self.now

    def _fill(self, k: int) -> None:
        """Hand class ``k``'s share out in queue order from ``now``."""
        now = self.now
        left = self._shares[k] - self._used[k]
        ids, rem, dem = self._ids[k], self._rem[k], self._dem[k]
        i = self._part[k]
        if i >= 0:
            r = self._part_rem[k] - self._part_rate[k] * (now - self._part_t0[k])
            d = dem[i]
            if d <= left:
                self._part[k] = -1
                self._part_end[k] = math.inf
                end = now + r / d
                self.ends[ids[i]] = end
                heapq.heappush(self._heap, (end, k, i))
                self._used[k] += d
                left -= d
            else:
                self._part_rem[k], self._part_t0[k], self._part_rate[k] = r, now, left
                self._part_end[k] = now + r / left if left > 0 else math.inf
                return
        size = len(dem)
        while left > 0 and self._started[k] < size:
            i = self._started[k]
            self._started[k] = i + 1
            d = dem[i]
            if d <= left:
                end = now + rem[i] / d
                self.ends[ids[i]] = end
                heapq.heappush(self._heap, (end, k, i))
                self._used[k] += d
                left -= d
            else:
                self._part[k] = i
                self._part_rem[k], self._part_t0[k], self._part_rate[k] = rem[i], now, left
                self._part_end[k] = now + rem[i] / left
                break

    def _step(self, until: float) -> bool:
        """Handle the next event if it is due at or before ``until``; False if none is."""
        heap = self._heap
        part_end = self._part_end
        first_part = min(part_end)
        t = heap[0][0] if heap else math.inf
        if first_part < t:
            t = first_part
        if t > until or t == math.inf:
            return False
        self.now = t
        limit = t + _TIME_TOLERANCE * max(1.0, abs(t))
        touched: set[int] = set()
        used, demand, dems = self._used, self._demand, self._dem
        while heap and heap[0][0] <= limit:
            _, k, i = heapq.heappop(heap)
            d = dems[k][i]
            used[k] -= d
            demand[k] -= d
            touched.add(k)
        if first_part <= limit:
            for k in range(self._classes):
                i = self._part[k]
                if i >= 0 and part_end[k] <= limit:
                    self.ends[self._ids[k][i]] = t
                    demand[k] -= dems[k][i]
                    self._part[k] = -1
                    part_end[k] = math.inf
                    touched.add(k)
        shares = self._shares
        # a class whose demand stays above its share leaves the water-fill unchanged
        if any(demand[k] < shares[k] for k in touched):
            fresh = weighted_water_fill(demand, self.weights, self.capacity)
            for k in range(self._classes):
                if fresh[k] != shares[k]:
                    touched.add(k)
            self._shares = fresh
        for k in sorted(touched):
            self._fill(k)
        self._note_saturation(sorted(touched))
        return True


def fifo_classes_completion_time(
    *,
    now: float,
    ids: np.ndarray,
    remaining: np.ndarray,
    demand: np.ndarray,
    job_class: np.ndarray,
    weights: Sequence[float],
    capacity: Any,
    job_id: int,
) -> float:
    """Completion time of ``job_id`` when the active jobs (columns in submission order, with
    believed remaining work) are served with no further arrivals: ``capacity`` split over
    classes by weighted water-filling, FIFO with demand caps inside each class."""
    if not np.any(ids == job_id):
        raise SchedulerError(f"job {job_id} is not active; nothing to predict")
    forecast = FifoClassesForecast.build(
        now=now,
        ids=ids,
        remaining=remaining,
        demand=demand,
        job_class=job_class,
        weights=weights,
        capacity=capacity,
    )
    return forecast.completion_time(job_id)
