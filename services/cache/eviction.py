"""Which entry leaves first when a replica's cache is full: LRU or LFU."""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import OrderedDict
from typing import Protocol

__all__ = ["EvictionKind", "EvictionPolicy", "LeastFrequentlyUsed", "LeastRecentlyUsed", "make"]


class EvictionKind(enum.Enum):
    LRU = "lru"
    LFU = "lfu"


class EvictionPolicy(Protocol):
    def added(self, id_: int) -> None: ...

    def used(self, id_: int) -> None: ...

    def removed(self, id_: int) -> None: ...

    def victim(self) -> int | None:
        """The entry to evict next (not removed by this call), None when empty."""
        ...


class LeastRecentlyUsed:
    def __init__(self) -> None:
        self._order: OrderedDict[int, None] = OrderedDict()

    def added(self, id_: int) -> None:
        self._order[id_] = None
        self._order.move_to_end(id_)

    def used(self, id_: int) -> None:
        if id_ in self._order:
            self._order.move_to_end(id_)

    def removed(self, id_: int) -> None:
        self._order.pop(id_, None)

    def victim(self) -> int | None:
        return next(iter(self._order), None)


class LeastFrequentlyUsed:
    """Fewest hits first; among equals, the oldest. A lazy heap: stale items are skipped."""

    def __init__(self) -> None:
        self._uses: dict[int, int] = {}
        self._heap: list[tuple[int, int, int]] = []
        self._tick = itertools.count()

    def added(self, id_: int) -> None:
        self._uses[id_] = 0
        heapq.heappush(self._heap, (0, next(self._tick), id_))

    def used(self, id_: int) -> None:
        if id_ in self._uses:
            self._uses[id_] += 1
            heapq.heappush(self._heap, (self._uses[id_], next(self._tick), id_))

    def removed(self, id_: int) -> None:
        self._uses.pop(id_, None)

    def victim(self) -> int | None:
        while self._heap:
            uses, _, id_ = self._heap[0]
            if self._uses.get(id_) == uses:
                return id_
            heapq.heappop(self._heap)
        return None


def make(kind: EvictionKind) -> EvictionPolicy:
    return LeastRecentlyUsed() if kind is EvictionKind.LRU else LeastFrequentlyUsed()
