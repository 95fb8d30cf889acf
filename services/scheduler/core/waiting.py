"""Jobs that wait: the rule that says when a policy gives a waiting job nothing, and the
queues in which the core keeps such jobs out of its decisions.

On a busy cluster most active jobs wait (the 51k-job trace keeps tens of thousands queued
under FIFO), and a decision over every one of them costs O(active jobs) numpy work per
event. For the policies that serve waiting jobs in a fixed order (FIFO, WFQ-PCS, SRSF, LAS,
AFS with more jobs than GPUs) a job that gets nothing keeps its place: its ordering key
(submission, believed remaining work, attained service) does not move while it gets no GPU.
The core *parks* such jobs in a heap per class and decides over the others only, after
checking, at every decision, that the first parked job of each class would get nothing in
a decision over every job (:meth:`WaitingRule.idles`); when it would, it is brought back
first. So the decision over the unparked jobs is the decision over all of them, with zeros
for the parked ones.
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ParkedJobs", "WaitingRule"]

#: the orders a waiting rule knows (the column that ranks waiting jobs; ties in submission order)
ORDERS = ("submission", "remaining", "attained")


@dataclass(frozen=True, slots=True)
class WaitingRule:
    """When a policy gives a job nothing, whatever the jobs ranked after it."""

    #: the column that ranks jobs for GPUs: ``submission``, ``remaining`` (believed remaining
    #: work) or ``attained`` (attained service); ties in submission order
    order: str
    #: True: jobs compete only with their own class (WFQ-PCS: FIFO inside a class)
    per_class: bool = False
    #: True: AFS's many-jobs regime: when the jobs' demands, each capped at one GPU, exceed
    #: the capacity, the first floor(capacity) jobs in order get one GPU each, the rest none
    one_gpu_each: bool = False

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order: {self.order!r} is not one of {ORDERS}")

    def idles(
        self, ahead_demand: float, ahead_count: int, unit_demand: float, capacity: float
    ) -> bool:
        """True when a job ranked after jobs of total demand ``ahead_demand`` (``ahead_count``
        of them) is sure to get nothing; ``unit_demand`` is the sum over the decided jobs of
        min(demand, 1). Margins keep float rounding on the safe side (the job is kept)."""
        if self.one_gpu_each:
            return ahead_count >= math.floor(capacity) and unit_demand >= capacity + 1.0
        return ahead_demand > capacity + 1e-9 * max(1.0, abs(capacity))


# a parked job: (ordering key, submission number, job id, class, column of the job table)
Entry = tuple[float, int, int, int, tuple[float, ...]]


class ParkedJobs:
    """Parked jobs: one heap per class (one for all when the rule is not per class), ordered
    by (key, submission number); plus lookups by job id and by submission number."""

    __slots__ = ("_by_id", "_by_seq", "_heaps", "_seqs")

    def __init__(self) -> None:
        self._heaps: dict[int, list[Entry]] = {}
        self._by_id: dict[int, Entry] = {}
        self._by_seq: dict[int, Entry] = {}
        self._seqs: list[int] = []  # sorted submission numbers of the parked jobs

    def __len__(self) -> int:
        return len(self._by_id)

    def copy(self) -> ParkedJobs:
        twin = ParkedJobs()
        twin._heaps = {g: list(h) for g, h in self._heaps.items() if h}
        twin._by_id = dict(self._by_id)
        twin._by_seq = dict(self._by_seq)
        twin._seqs = list(self._seqs)
        return twin

    def push(self, group: int, entry: Entry) -> None:
        heapq.heappush(self._heaps.setdefault(group, []), entry)
        self._by_id[entry[2]] = entry
        self._by_seq[entry[1]] = entry
        bisect.insort(self._seqs, entry[1])

    def extend(self, groups: list[int], entries: list[Entry]) -> None:
        if len(entries) * 8 < len(self._by_id):
            # a few into a big heap: pushes cost less than a heapify of the whole heap
            for group, entry in zip(groups, entries, strict=True):
                heapq.heappush(self._heaps.setdefault(group, []), entry)
        else:
            for group, entry in zip(groups, entries, strict=True):
                self._heaps.setdefault(group, []).append(entry)
            for group in set(groups):
                heapq.heapify(self._heaps[group])
        for entry in entries:
            self._by_id[entry[2]] = entry
            self._by_seq[entry[1]] = entry
        seqs = [e[1] for e in entries]
        if self._seqs and seqs and min(seqs) > self._seqs[-1]:
            self._seqs.extend(sorted(seqs))  # the usual case: newer than every parked job
        else:
            self._seqs = sorted([*self._seqs, *seqs])

    def groups(self) -> list[int]:
        return [g for g, h in self._heaps.items() if h]

    def head(self, group: int) -> Entry | None:
        heap = self._heaps.get(group)
        return heap[0] if heap else None

    def pop(self, group: int) -> Entry:
        entry = heapq.heappop(self._heaps[group])
        del self._by_id[entry[2]]
        del self._by_seq[entry[1]]
        del self._seqs[bisect.bisect_left(self._seqs, entry[1])]
        return entry

    def get(self, job_id: int) -> Entry | None:
        return self._by_id.get(job_id)

    def by_seq(self, seq: int) -> Entry | None:
        return self._by_seq.get(seq)

    def latest_seqs(self, count: int) -> list[int]:
        return self._seqs[-count:] if count > 0 else []

    def entries(self) -> list[Entry]:
        """Every parked job, in submission order."""
        return [self._by_seq[s] for s in self._seqs]

    def replace(self, groups: list[int], entries: list[Entry]) -> None:
        """Replace every parked job."""
        self._heaps = {}
        self._by_id = {}
        self._by_seq = {}
        self._seqs = []
        self.extend(groups, entries)

    @staticmethod
    def columns(entries: list[Entry]) -> np.ndarray:
        """The job-table columns of ``entries`` as one (rows, len) array."""
        if not entries:
            return np.zeros((0, 0))
        return np.array([e[4] for e in entries], dtype=float).T


def ranked_before(
    key: np.ndarray, seq: np.ndarray, head_key: float, head_seq: int
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Mask of jobs ranked strictly before (head_key, head_seq)."""
    return (key < head_key) | ((key == head_key) & (seq < head_seq))
