"""The synchronous scheduling core: a cluster of GPUs, its active jobs, and event handling.

Callers (the simpy simulator, the predictor's replay, the live service) drive it with three
calls: :meth:`Cluster.submit` at an arrival, :meth:`Cluster.next_event_time` to learn when the
next completion (or forced re-decision) is due, and :meth:`Cluster.advance` to move time there.
Allocations are recomputed by the policy at every arrival, completion and forced re-decision,
and held constant in between (the fluid model: work done = rate x time).

The active jobs live in numpy columns in submission order, so a decision is a handful of
vector operations. Under policies with a :class:`~.waiting.WaitingRule` (FIFO, WFQ-PCS, SRSF,
LAS, AFS) jobs that are sure to get nothing are *parked* out of those columns (see
:mod:`.waiting`), so an event costs O(jobs that can run), not O(queued jobs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .model import Allocation, ClusterConfig, ConfigError, Job, SchedulerError, UnknownJobError
from .policies import ActiveJobs, Policy
from .waiting import Entry, ParkedJobs, WaitingRule, ranked_before

__all__ = ["Cluster", "Completion", "SpeedupCurve", "amdahl", "round_to_whole_gpus"]

# rows of the float table; attained service = _ATT_BASE + _ATT_REF - _REMAINING (no update per step)
(
    _ARRIVAL,
    _REMAINING,
    _FACTOR,
    _SIZE,
    _DEMAND,
    _SEEN_FIRST,
    _SEEN_SUM0,
    _SEEN_N0,
    _ATT_BASE,
    _ATT_REF,
) = range(10)
_ROWS = 10
#: a job whose remaining run time is below this (seconds, relative to the clock) is done;
#: absorbs float error when time is advanced exactly to a predicted completion
_TIME_TOLERANCE = 1e-9
#: idle (zero-GPU) jobs a decision leaves among the decided ones before it parks any; below
#: it parking costs more than it saves (the check of the parked heads at every decision)
_PARK_SLACK = 256


class SpeedupCurve(Protocol):
    """Work per second (GPU-seconds of single-GPU work) a job does on ``gpus`` GPUs."""

    def __call__(self, gpus: np.ndarray, demand: np.ndarray) -> np.ndarray: ...


def amdahl(serial_fraction: float) -> SpeedupCurve:
    """Amdahl's law: ``g / (1 + s (g - 1))`` for g >= 1, linear below one GPU."""
    if not 0 <= serial_fraction < 1:
        raise ConfigError("serial_fraction", f"must be in [0, 1), got {serial_fraction!r}")

    def curve(gpus: np.ndarray, demand: np.ndarray) -> np.ndarray:
        scaled = gpus / (1.0 + serial_fraction * np.maximum(gpus - 1.0, 0.0))
        return np.asarray(scaled, dtype=float)

    return curve


def round_to_whole_gpus(alloc: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Whole-GPU variant of a fluid allocation: floor every share, then hand the GPUs the
    fractions add up to to the largest fractions first (ties in submission order), never
    above a job's demand."""
    whole = np.floor(alloc + 1e-9)
    spare = round(float(alloc.sum() - whole.sum()))
    if spare > 0:
        fraction = alloc - whole
        order = np.argsort(-fraction, kind="stable")
        order = order[(whole[order] + 1 <= demand[order] + 1e-9) & (fraction[order] > 1e-9)]
        whole[order[:spare]] += 1
    return whole


@dataclass(frozen=True, slots=True)
class Completion:
    """A job that finished."""

    job_id: int
    #: completion time, seconds
    time: float
    #: average number of active jobs the job saw at scheduling events (for its fair JCT)
    contention: float


class Cluster:
    """Active jobs on a cluster under one policy. Not thread-safe; one owner drives it."""

    def __init__(
        self,
        config: ClusterConfig,
        policy: Policy,
        speedup: SpeedupCurve | None = None,
        *,
        park_waiting: bool = True,
        park_slack: int = _PARK_SLACK,
    ) -> None:
        """``park_waiting=False`` decides over every active job at every event (the reference
        the parked path is tested against); the results are the same either way.
        ``park_slack``: idle jobs left among the decided ones before they are parked."""
        self.config = config
        self.policy = policy
        self.speedup = speedup
        self.park_waiting = park_waiting
        self.park_slack = park_slack
        rule: WaitingRule | None = getattr(policy, "waiting_rule", None)
        # a speed-up curve could give a zero-GPU job work: park only under linear scaling
        self._rule = rule if park_waiting and speedup is None else None
        self._parked = ParkedJobs()
        self.now = 0.0
        # the decided (unparked) jobs: _n columns in submission order
        self._n = 0
        self._table = np.zeros((_ROWS, 16))
        self._ids = np.zeros(16, dtype=np.int64)
        self._classes = np.zeros(16, dtype=np.int64)
        self._seq = np.zeros(16, dtype=np.int64)
        self._exact = True
        # the current decision: GPUs, work rates, absolute finish times, earliest finish;
        # _alloc is None when an event invalidated it
        self._alloc: np.ndarray | None = np.zeros(0)
        self._rate = np.zeros(0)
        self._finish_at = np.zeros(0)
        self._next_finish = math.inf
        self._last_decision = 0.0
        # events seen so far and the sum of the active-job counts at them (contention)
        self._events = 0
        self._seen_sum = 0.0
        #: jobs submitted so far (a change counter for caches such as the predictor's)
        self.submitted = 0

    # ----------------------------------------------------------------- queries
    @property
    def active_count(self) -> int:
        return self._n + len(self._parked)

    @property
    def parked_count(self) -> int:
        """Active jobs kept out of decisions because they are sure to get no GPU."""
        return len(self._parked)

    def is_active(self, job_id: int) -> bool:
        return bool(np.any(self._ids[: self._n] == job_id)) or (
            self._parked.get(job_id) is not None
        )

    def active_job_ids(self) -> list[int]:
        """Active jobs in submission order."""
        if not self._parked:
            return self._ids[: self._n].tolist()
        return self._all_columns()[1].tolist()

    def allocations(self) -> tuple[Allocation, ...]:
        """The current decision, one record per active job in submission order."""
        self._decide()
        assert self._alloc is not None
        pairs = zip(
            self._seq[: self._n].tolist(),
            self._ids[: self._n].tolist(),
            self._alloc.tolist(),
            strict=True,
        )
        if self._parked:
            parked = ((e[1], e[2], 0.0) for e in self._parked.entries())
            return tuple(Allocation(i, g) for _, i, g in sorted([*pairs, *parked]))
        return tuple(Allocation(i, g) for _, i, g in pairs)

    def remaining_work(self, job_id: int) -> float:
        """True remaining work of an active job, GPU-seconds."""
        entry = self._parked.get(job_id)
        if entry is not None:
            return entry[4][_REMAINING]
        return float(self._table[_REMAINING, self._index(job_id)])

    def settled_finish_time(self, job_id: int) -> float | None:
        """The job's finish time if it holds its whole demand under a policy that never takes
        it back before arrivals (``policy.keeps_full_demand``); else None."""
        if not self.policy.keeps_full_demand:
            return None
        self._decide()
        assert self._alloc is not None
        if self._parked.get(job_id) is not None:
            return None
        i = self._index(job_id)
        if self._alloc[i] < self._table[_DEMAND, i]:
            return None
        return float(self._finish_at[i])

    def next_completion_time(self) -> float:
        """When the next active job finishes at the current allocation (inf: none runs)."""
        self._decide()
        return self._next_finish

    def next_event_time(self) -> float:
        """The earlier of the next completion and the policy's next forced re-decision."""
        self._decide()
        interval = self.policy.reallocation_interval
        if interval is not None and self.active_count > 0:
            return min(self._next_finish, self._last_decision + interval)
        return self._next_finish

    # ----------------------------------------------------------------- events
    def submit(self, job: Job, now: float) -> list[Completion]:
        """Add ``job`` at time ``now`` (>= the clock); returns the jobs that completed while the
        clock moved to ``now`` (empty when the caller advanced first, as drivers do)."""
        if now < self.now:
            raise SchedulerError(f"submit at {now} is before the clock {self.now}")
        done = self.advance(now) if now > self.now else []
        if self.is_active(job.job_id):
            raise SchedulerError(f"job {job.job_id} is already active")
        self._count_event()
        n = self._n
        if n == self._table.shape[1]:
            self._grow()
        believed = job.believed_size
        col = self._table[:, n]
        col[_ARRIVAL] = now
        col[_REMAINING] = job.size
        col[_FACTOR] = believed / job.size
        col[_SIZE] = believed
        col[_DEMAND] = job.demand
        col[_SEEN_FIRST] = self.active_count + 1
        col[_SEEN_SUM0] = self._seen_sum
        col[_SEEN_N0] = self._events
        col[_ATT_BASE] = 0.0
        col[_ATT_REF] = job.size
        self._ids[n] = job.job_id
        self._classes[n] = self.policy.job_class(believed)
        self._seq[n] = self.submitted
        if believed != job.size:
            self._exact = False
        self._n = n + 1
        self.submitted += 1
        self._alloc = None
        return done

    def advance(self, to_time: float) -> list[Completion]:
        """Move the clock to ``to_time`` (not past :meth:`next_event_time`), doing the work
        of the current allocation; jobs that finish at ``to_time`` leave and are returned; a
        forced re-decision due at ``to_time`` is taken."""
        if to_time < self.now:
            raise SchedulerError(f"cannot go back in time: {to_time} < {self.now}")
        self._decide()
        n = self._n
        if n == 0:
            self.now = to_time
            return []
        if to_time > self.now:
            remaining = self._table[_REMAINING, :n]
            remaining -= self._rate * (to_time - self.now)
            self.now = to_time
        done: list[Completion] = []
        tolerance = _TIME_TOLERANCE * max(1.0, abs(to_time))
        if to_time + tolerance >= self._next_finish:
            finished = np.flatnonzero(self._finish_at <= to_time + tolerance)
            done = self._remove(finished)
        interval = self.policy.reallocation_interval
        if (
            interval is not None
            and self.active_count
            and self._alloc is not None
            and self.now >= self._last_decision + interval
        ):
            self._count_event()
            self._alloc = None
        return done

    @property
    def exact_sizes(self) -> bool:
        """True when every job's believed size is its true size (replays then follow the
        cluster's own future exactly, until the next arrival)."""
        return self._exact

    def latest_submissions(
        self, count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, arrival, believed size, demand, job_class)`` of the last ``count`` active
        jobs in submission order (the latest submissions, unless some of those finished)."""
        lo = max(self._n - count, 0)
        t = self._table
        if self._parked:
            # the latest submissions among the decided jobs' and the parked jobs' latest
            seqs = sorted([*self._seq[lo : self._n].tolist(), *self._parked.latest_seqs(count)])
            table, ids, classes, _ = self._columns_of(seqs[-count:] if count > 0 else [])
            return ids, table[_ARRIVAL], table[_SIZE], table[_DEMAND], classes
        return (
            self._ids[lo : self._n].copy(),
            t[_ARRIVAL, lo : self._n].copy(),
            t[_SIZE, lo : self._n].copy(),
            t[_DEMAND, lo : self._n].copy(),
            self._classes[lo : self._n].copy(),
        )

    def believed_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, remaining, demand, job_class)`` of the active jobs in submission order, with
        the *believed* remaining work (what :meth:`believed_copy` replays); fresh arrays."""
        if self._parked:
            t, ids, classes, _ = self._all_columns()
            n = len(ids)
        else:
            n = self._n
            t, ids, classes = self._table, self._ids[:n].copy(), self._classes[:n].copy()
        remaining = t[_REMAINING, :n].copy() if self._exact else t[_REMAINING, :n] * t[_FACTOR, :n]
        return ids, remaining, t[_DEMAND, :n].copy(), classes

    def believed_copy(self) -> Cluster:
        """A copy in which every job's true remaining work is replaced by the believed one:
        the state a predictor may replay (it cannot know the truth)."""
        n = self._n
        twin = Cluster(
            self.config,
            self.policy,
            self.speedup,
            park_waiting=self.park_waiting,
            park_slack=self.park_slack,
        )
        twin.now = self.now
        twin._n = n
        twin._table = self._table[:, : max(n, 1)].copy()
        twin._ids = self._ids[: max(n, 1)].copy()
        twin._classes = self._classes[: max(n, 1)].copy()
        twin._seq = self._seq[: max(n, 1)].copy()
        twin.submitted = self.submitted
        if self._parked:
            twin._parked = self._parked.copy()
        twin._events = self._events
        twin._seen_sum = self._seen_sum
        twin._last_decision = self._last_decision
        if self._exact:
            twin._alloc = self._alloc
            twin._rate = self._rate
            twin._finish_at = self._finish_at
            twin._next_finish = self._next_finish
        else:
            table = twin._table
            table[_ATT_BASE, :n] += table[_ATT_REF, :n] - table[_REMAINING, :n]
            table[_REMAINING, :n] *= table[_FACTOR, :n]
            table[_ATT_REF, :n] = table[_REMAINING, :n]
            table[_FACTOR, :n] = 1.0
            twin._alloc = None
            if self._parked:
                twin._park_believed()
        return twin

    # ----------------------------------------------------------------- internals
    def _columns_of(self, seqs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(table, ids, classes, seqs)`` of the active jobs with submission numbers ``seqs``
        (ascending), decided or parked."""
        n = self._n
        positions = np.searchsorted(self._seq[:n], seqs)
        table = np.empty((_ROWS, len(seqs)))
        ids = np.empty(len(seqs), dtype=np.int64)
        classes = np.empty(len(seqs), dtype=np.int64)
        for k, (seq, pos) in enumerate(zip(seqs, positions.tolist(), strict=True)):
            if pos < n and self._seq[pos] == seq:
                table[:, k] = self._table[:, pos]
                ids[k], classes[k] = self._ids[pos], self._classes[pos]
            else:
                entry = self._parked.by_seq(seq)
                assert entry is not None
                table[:, k] = entry[4]
                ids[k], classes[k] = entry[2], entry[3]
        return table, ids, classes, np.asarray(seqs, dtype=np.int64)

    def _all_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(table, ids, classes, seqs)`` of every active job, decided or parked, in
        submission order (fresh arrays)."""
        n = self._n
        entries = self._parked.entries()
        seqs = np.concatenate([self._seq[:n], np.array([e[1] for e in entries], dtype=np.int64)])
        order = np.argsort(seqs, kind="stable")
        table = np.concatenate(
            [self._table[:, :n], ParkedJobs.columns(entries).reshape(_ROWS, -1)], axis=1
        )
        ids = np.concatenate([self._ids[:n], np.array([e[2] for e in entries], dtype=np.int64)])
        classes = np.concatenate(
            [self._classes[:n], np.array([e[3] for e in entries], dtype=np.int64)]
        )
        return table[:, order], ids[order], classes[order], seqs[order]

    def _order_key(self) -> np.ndarray:
        """The decided jobs' ranking key under the waiting rule (see :mod:`.waiting`)."""
        assert self._rule is not None
        n = self._n
        t = self._table
        if self._rule.order == "submission":
            return self._seq[:n]
        if self._rule.order == "attained":
            return self._attained()
        return t[_REMAINING, :n] if self._exact else t[_REMAINING, :n] * t[_FACTOR, :n]

    def _unpark_needed(self) -> None:
        """Bring back every parked job that might get GPUs in the coming decision: the first
        parked job of each class, until it is sure to get nothing."""
        rule = self._rule
        assert rule is not None
        capacity = float(self.config.gpus)
        for group in self._parked.groups():
            while (head := self._parked.head(group)) is not None:
                n = self._n
                demand = self._table[_DEMAND, :n]
                before = ranked_before(self._order_key(), self._seq[:n], head[0], head[1])
                if rule.per_class:
                    before &= self._classes[:n] == group
                unit = float(np.minimum(demand, 1.0).sum()) if rule.one_gpu_each else 0.0
                if rule.idles(float(demand[before].sum()), int(before.sum()), unit, capacity):
                    break
                self._insert(self._parked.pop(group))

    def _insert(self, entry: Entry) -> None:
        """Put a parked job back among the decided ones, at its submission position."""
        n = self._n
        if n == self._table.shape[1]:
            self._grow()
        pos = int(np.searchsorted(self._seq[:n], entry[1]))
        t = self._table
        t[:, pos + 1 : n + 1] = t[:, pos:n].copy()
        t[:, pos] = entry[4]
        for column, value in (
            (self._ids, entry[2]),
            (self._classes, entry[3]),
            (self._seq, entry[1]),
        ):
            column[pos + 1 : n + 1] = column[pos:n].copy()
            column[pos] = value
        self._n = n + 1

    def _park_idle(self, alloc: np.ndarray) -> np.ndarray | None:
        """Park every decided job the decision gave nothing, once more than a slack of them
        wait; returns the mask of the jobs kept (None: nothing parked)."""
        rule = self._rule
        assert rule is not None
        idle = alloc <= 0
        if int(np.count_nonzero(idle)) <= self.park_slack:
            return None
        n = self._n
        t = self._table
        which = np.flatnonzero(idle)
        # the best-ranked half of the slack stays, so that the next decisions rarely need
        # to bring a parked job back
        stay = self.park_slack // 2
        if stay:
            key = self._order_key()[which]
            ranked = which[np.lexsort((self._seq[which], key))]
            which = np.sort(ranked[stay:])
            idle = np.zeros(n, dtype=bool)
            idle[which] = True
        classes = self._classes[which].tolist()
        entries: list[Entry] = list(
            zip(
                self._order_key()[which].tolist(),
                self._seq[which].tolist(),
                self._ids[which].tolist(),
                classes,
                map(tuple, t[:, which].T.tolist()),
                strict=True,
            )
        )
        self._parked.extend(classes if rule.per_class else [0] * len(entries), entries)
        keep = ~idle
        m = n - len(entries)
        t[:, :m] = t[:, :n][:, keep]
        self._ids[:m] = self._ids[:n][keep]
        self._classes[:m] = self._classes[:n][keep]
        self._seq[:m] = self._seq[:n][keep]
        self._n = m
        return keep

    def _park_believed(self) -> None:
        """In a believed copy: give the parked jobs the believed remaining work and attained
        service the decided ones got, and re-rank them."""
        rule = self._rule
        entries = self._parked.entries()
        if rule is None or not entries:
            return
        fresh: list[Entry] = []
        for key, seq, job_id, job_class, values in entries:
            col = list(values)
            col[_ATT_BASE] += col[_ATT_REF] - col[_REMAINING]
            col[_REMAINING] *= col[_FACTOR]
            col[_ATT_REF] = col[_REMAINING]
            col[_FACTOR] = 1.0
            if rule.order == "attained":
                key = col[_ATT_BASE] + col[_ATT_REF] - col[_REMAINING]
            elif rule.order == "remaining":
                key = col[_REMAINING]
            fresh.append((key, seq, job_id, job_class, tuple(col)))
        self._parked.replace([e[3] if rule.per_class else 0 for e in fresh], fresh)

    def _index(self, job_id: int) -> int:
        hits = np.flatnonzero(self._ids[: self._n] == job_id)
        if len(hits) == 0:
            raise UnknownJobError(job_id)
        return int(hits[0])

    def _grow(self) -> None:
        size = self._table.shape[1] * 2
        table = np.zeros((_ROWS, size))
        table[:, : self._n] = self._table[:, : self._n]
        self._table = table
        self._ids = np.resize(self._ids, size)
        self._classes = np.resize(self._classes, size)
        self._seq = np.resize(self._seq, size)

    def _count_event(self) -> None:
        self._seen_sum += self._n + len(self._parked)
        self._events += 1

    def _contention(self) -> np.ndarray:
        n = self._n
        t = self._table
        return (t[_SEEN_FIRST, :n] + self._seen_sum - t[_SEEN_SUM0, :n]) / (
            1.0 + self._events - t[_SEEN_N0, :n]
        )

    def _attained(self) -> np.ndarray:
        n = self._n
        t = self._table
        return t[_ATT_BASE, :n] + t[_ATT_REF, :n] - t[_REMAINING, :n]

    def _decide(self) -> None:
        """Recompute the allocation if an event made it stale."""
        if self._alloc is not None:
            return
        if self._parked:
            self._unpark_needed()
        n = self._n
        t = self._table
        remaining = t[_REMAINING, :n]
        demand = t[_DEMAND, :n]
        jobs = ActiveJobs(
            now=self.now,
            arrival=t[_ARRIVAL, :n],
            size=t[_SIZE, :n],
            remaining=remaining if self._exact else remaining * t[_FACTOR, :n],
            demand=demand,
            job_class=self._classes[:n],
            attained=self._attained,
            contention=self._contention,
        )
        alloc = self.policy.allocate(jobs, self.config.gpus)
        if self.config.whole_gpus:
            alloc = round_to_whole_gpus(alloc, demand)
        alloc = np.asarray(alloc, dtype=float)
        rate = alloc if self.speedup is None else self.speedup(alloc, demand)
        running = rate > 0
        finish_at = np.divide(remaining, rate, out=np.full(n, math.inf), where=running)
        finish_at += self.now
        if self._rule is not None:
            keep = self._park_idle(alloc)
            if keep is not None:
                alloc, rate, finish_at = alloc[keep], rate[keep], finish_at[keep]
                n = self._n
        self._alloc = alloc
        self._rate = rate
        self._finish_at = finish_at
        self._next_finish = float(finish_at.min()) if n else math.inf
        self._last_decision = self.now

    def _remove(self, finished: np.ndarray) -> list[Completion]:
        n = self._n
        t = self._table
        done = []
        for i in finished.tolist():
            # every completion is one scheduling event, seen by all jobs still active
            self._count_event()
            seen = (t[_SEEN_FIRST, i] + self._seen_sum - t[_SEEN_SUM0, i]) / (
                1.0 + self._events - t[_SEEN_N0, i]
            )
            done.append(Completion(int(self._ids[i]), self.now, float(seen)))
        if len(done) == 1:
            i = int(finished[0])
            t[:, i : n - 1] = t[:, i + 1 : n]
            self._ids[i : n - 1] = self._ids[i + 1 : n]
            self._classes[i : n - 1] = self._classes[i + 1 : n]
            self._seq[i : n - 1] = self._seq[i + 1 : n]
        elif done:
            keep = np.ones(n, dtype=bool)
            keep[finished] = False
            m = n - len(done)
            t[:, :m] = t[:, :n][:, keep]
            self._ids[:m] = self._ids[:n][keep]
            self._classes[:m] = self._classes[:n][keep]
            self._seq[:m] = self._seq[:n][keep]
        self._n = n - len(done)
        self._alloc = None
        return done
