"""The cache of one replica, in memory: entries, the exact-key map, the vector index.

A synchronous core: the adapters persist entries and spread invalidations; this module
decides hits, applies TTLs and the memory bound, and counts outcomes. Nothing here does
I/O, so a test drives it with plain values and a clock it sets.
"""

from __future__ import annotations

import enum
import itertools
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from llmproxy.cache.eviction import EvictionKind, make
from llmproxy.cache.guard import Mismatch, find_mismatch
from llmproxy.cache.index import ScopedIndex
from llmproxy.cache.policy import Mode

__all__ = [
    "CacheMemory",
    "Entry",
    "Hit",
    "HitKind",
    "Lookup",
    "LookupResult",
    "Target",
    "TargetKind",
]

Vector = npt.NDArray[np.float32]

#: neighbours examined per semantic lookup: the best one may be vetoed by the guard
NEIGHBOURS = 8


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached answer. ``prompt`` is the prompt's head as the caller wrote it."""

    id: str
    tenant_id: str
    app_id: str
    conversation_id: str
    scope: str
    key: str
    prompt: str
    tail: str
    answer: str
    model: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_nanousd: int
    request_id: str
    created_at: datetime
    expires_at: datetime
    embedding: Vector | None = field(default=None, compare=False)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class HitKind(enum.Enum):
    EXACT = "exact"
    SEMANTIC = "semantic"


@dataclass(frozen=True, slots=True)
class Lookup:
    """One question, already keyed (see :mod:`llmproxy.cache.keys`)."""

    tenant_id: str
    scope: str
    key: str
    prompt: str
    tail: str
    mode: Mode
    threshold: float
    #: the embedding of the prompt's head; None skips the semantic search
    vector: Vector | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    kind: HitKind
    similarity: float
    age: timedelta


@dataclass(frozen=True, slots=True)
class LookupResult:
    hit: Hit | None
    #: neighbours above the threshold that the guard vetoed (for logs and the benchmark)
    vetoed: tuple[tuple[Entry, float, Mismatch], ...] = ()


class TargetKind(enum.Enum):
    ENTRY = "entry"
    KEY = "key"
    CONVERSATION = "conversation"
    APP = "app"
    TENANT = "tenant"


@dataclass(frozen=True, slots=True)
class Target:
    """What an invalidation removes; always within one tenant."""

    tenant_id: str
    kind: TargetKind
    value: str = ""

    def matches(self, entry: Entry) -> bool:
        if entry.tenant_id != self.tenant_id:
            return False
        match self.kind:
            case TargetKind.ENTRY:
                return entry.id == self.value
            case TargetKind.KEY:
                return entry.key == self.value
            case TargetKind.CONVERSATION:
                return entry.conversation_id == self.value
            case TargetKind.APP:
                return entry.app_id == self.value
            case TargetKind.TENANT:
                return True


@dataclass
class _TenantStats:
    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    evictions: int = 0


def _text_bytes(entry: Entry) -> int:
    # an estimate: the strings and the fixed-size fields of the record and its maps
    return len(entry.prompt) + len(entry.answer) + len(entry.model) + 600


class CacheMemory:
    """Entries held by this replica, bounded by ``max_entries`` (LRU or LFU eviction)."""

    def __init__(
        self,
        *,
        dimensions: int,
        max_entries: int = 100_000,
        eviction: EvictionKind = EvictionKind.LRU,
        ann_min_entries: int = 2_000,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._entries: dict[str, Entry] = {}
        self._handles: dict[str, int] = {}
        self._by_handle: dict[int, str] = {}
        self._by_key: dict[str, str] = {}
        self._index = ScopedIndex(dimensions, ann_min_entries=ann_min_entries)
        self._eviction = make(eviction)
        self._next_handle = itertools.count()
        self._stats: dict[str, _TenantStats] = {}
        self._per_tenant: Counter[str] = Counter()
        self._text_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    @property
    def max_entries(self) -> int:
        return self._max

    def has_key(self, key: str) -> bool:
        return key in self._by_key

    def scope_size(self, scope: str) -> int:
        """Entries with a vector in ``scope`` (0: a semantic search would find nothing)."""
        return self._index.scope_size(scope)

    def get(self, entry_id: str) -> Entry | None:
        return self._entries.get(entry_id)

    def put(self, entry: Entry) -> list[Entry]:
        """Hold ``entry`` (replacing one with the same id or key); returns the evicted."""
        if entry.id in self._entries:
            self._drop(entry.id)
        if (previous := self._by_key.get(entry.key)) is not None:
            self._drop(previous)
        handle = next(self._next_handle)
        self._entries[entry.id] = entry
        self._handles[entry.id] = handle
        self._by_handle[handle] = entry.id
        self._by_key[entry.key] = entry.id
        self._per_tenant[entry.tenant_id] += 1
        self._text_bytes += _text_bytes(entry)
        if entry.embedding is not None:
            self._index.add(entry.scope, handle, entry.embedding)
        self._eviction.added(handle)
        evicted = []
        while len(self._entries) > self._max:
            victim = self._eviction.victim()
            if victim is None:  # pragma: no cover - the policy tracks every entry
                break
            gone = self._drop(self._by_handle[victim])
            self._tenant(gone.tenant_id).evictions += 1
            evicted.append(gone)
        return evicted

    def load(self, entries: list[Entry]) -> None:
        """Bulk :meth:`put` of entries with distinct keys, oldest first (rebuild at start)."""
        entries = entries[-self._max :]
        by_scope: dict[str, tuple[list[int], list[Vector]]] = {}
        for entry in entries:
            embedding = entry.embedding
            self.put(replace(entry, embedding=None))
            if embedding is not None:
                self._entries[entry.id] = entry  # keep the vector with the entry
                ids, vectors = by_scope.setdefault(entry.scope, ([], []))
                ids.append(self._handles[entry.id])
                vectors.append(embedding)
        for scope, (ids, vectors) in by_scope.items():
            self._index.add_many(scope, np.array(ids, dtype=np.int64), np.stack(vectors))

    def remove(self, target: Target) -> list[Entry]:
        """Remove every entry ``target`` names; returns them."""
        if target.kind is TargetKind.ENTRY:
            entry = self._entries.get(target.value)
            doomed = [entry.id] if entry is not None and target.matches(entry) else []
        elif target.kind is TargetKind.KEY:
            entry_id = self._by_key.get(target.value)
            entry = self._entries.get(entry_id) if entry_id else None
            doomed = [entry.id] if entry is not None and target.matches(entry) else []
        else:
            doomed = [e.id for e in self._entries.values() if target.matches(e)]
        return [self._drop(entry_id) for entry_id in doomed]

    def expire(self, now: datetime) -> list[Entry]:
        """Remove every entry whose TTL has passed."""
        doomed = [e.id for e in self._entries.values() if e.expired(now)]
        return [self._drop(entry_id) for entry_id in doomed]

    def lookup(self, query: Lookup, now: datetime) -> LookupResult:
        """The answer this replica may give to ``query``, if any; counts the outcome."""
        stats = self._tenant(query.tenant_id)
        result = self._find(query, now)
        if result.hit is None:
            stats.misses += 1
        elif result.hit.kind is HitKind.EXACT:
            stats.exact_hits += 1
        else:
            stats.semantic_hits += 1
        if result.hit is not None:
            self._eviction.used(self._handles[result.hit.entry.id])
        return result

    def _find(self, query: Lookup, now: datetime) -> LookupResult:
        if query.mode is Mode.OFF:
            return LookupResult(None)
        entry_id = self._by_key.get(query.key)
        entry = self._entries.get(entry_id) if entry_id else None
        # the key already covers the tenant; checking again costs nothing and means a
        # bug elsewhere can never hand one tenant another's answer
        if entry is not None and entry.tenant_id == query.tenant_id and not entry.expired(now):
            return LookupResult(Hit(entry, HitKind.EXACT, 1.0, now - entry.created_at))
        if query.mode is not Mode.SEMANTIC or query.vector is None:
            return LookupResult(None)
        vetoed = []
        for neighbour in self._index.search(query.scope, query.vector, NEIGHBOURS):
            if neighbour.similarity < query.threshold:
                break
            candidate = self._entries[self._by_handle[neighbour.id]]
            if (
                candidate.tenant_id != query.tenant_id
                or candidate.scope != query.scope
                or candidate.tail != query.tail
                or candidate.expired(now)
            ):
                continue
            mismatch = find_mismatch(query.prompt, candidate.prompt)
            if mismatch is not None:
                vetoed.append((candidate, neighbour.similarity, mismatch))
                continue
            similarity = min(1.0, neighbour.similarity)
            hit = Hit(candidate, HitKind.SEMANTIC, similarity, now - candidate.created_at)
            return LookupResult(hit, tuple(vetoed))
        return LookupResult(None, tuple(vetoed))

    def stats(self, tenant_id: str) -> dict[str, int]:
        """Counters of one tenant ("" for every tenant) and the memory held."""
        if tenant_id:
            counters = [self._stats.get(tenant_id, _TenantStats())]
            entries = self._per_tenant[tenant_id]
        else:
            counters = list(self._stats.values())
            entries = len(self._entries)
        return {
            "entries": entries,
            "exact_hits": sum(c.exact_hits for c in counters),
            "semantic_hits": sum(c.semantic_hits for c in counters),
            "misses": sum(c.misses for c in counters),
            "evictions": sum(c.evictions for c in counters),
            "memory_bytes": self._memory_bytes(),
        }

    def _memory_bytes(self) -> int:
        return self._text_bytes + self._index.memory_bytes()

    def _tenant(self, tenant_id: str) -> _TenantStats:
        stats = self._stats.get(tenant_id)
        if stats is None:
            stats = self._stats[tenant_id] = _TenantStats()
        return stats

    def _drop(self, entry_id: str) -> Entry:
        entry = self._entries.pop(entry_id)
        handle = self._handles.pop(entry_id)
        del self._by_handle[handle]
        if self._by_key.get(entry.key) == entry_id:
            del self._by_key[entry.key]
        self._per_tenant[entry.tenant_id] -= 1
        self._text_bytes -= _text_bytes(entry)
        if entry.embedding is not None:
            self._index.remove(entry.scope, handle)
        self._eviction.removed(handle)
        return entry
