"""A bounded in-memory cache of conversations' turns and embedding matrices. No I/O.

The ``relevant`` strategy ranks every earlier turn of a conversation by its embedding, so
a build used to read all of a conversation's turns with their vectors from the database
and stack the vectors, on every request. Turns are immutable and only ever appended
(``seq`` grows; a conversation's turns go only all together, when it is erased), so a
replica can keep what it has read and ask the database only for the turns after the last
one it holds. The cache is never the authority on whether a conversation exists or whose
it is: every build still reads the conversation's row, filtered on the tenant, in the
same query that fetches the new turns (see
:meth:`llmproxy.context.repository.ConversationRepository.read_since`), and only then
extends the entry it holds. That makes it correct with several replicas:

* a turn appended through another replica is fetched by the next build (``seq >`` the
  last one held);
* a reset through another replica changes the row's ``reset_at``, which is part of the
  entry: a mismatch drops the entry and the history since the reset is read whole;
* an erasure through another replica makes the row's read fail (NOT_FOUND) before the
  entry is looked at; the replica then drops it (and every replica drops it on the
  ``cache.invalidate`` broadcast the erasure sends);
* another tenant's request never reaches an entry: the key holds the tenant, and the
  row's read filters on it.

Entries are immutable (a build extends by replacing), so a request that holds one while
another replaces it still sees a consistent snapshot. The cache is bounded by the turns
it holds (least recently used conversations go first) and by idle time.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from llmproxy.context.strategies import HistoryVectors, TurnRecord

__all__ = ["CachedHistory", "HistoryCache", "PromptVectors"]


@dataclass(frozen=True, slots=True)
class CachedHistory:
    """A conversation's turns since its last reset, oldest first, with their vectors."""

    tenant_id: str
    conversation_id: str
    #: the conversation's ``reset_at`` when the turns were read (None: never reset)
    reset_at: datetime | None
    #: the turns, without their embeddings (those are ``vectors``' rows: one copy only)
    turns: tuple[TurnRecord, ...]
    #: the turns' embeddings as one matrix, rows aligned with ``turns``
    vectors: HistoryVectors = field(repr=False)

    @property
    def last_seq(self) -> int:
        """The seq of the newest turn held (0: none)."""
        return self.turns[-1].seq if self.turns else 0

    @classmethod
    def build(
        cls,
        tenant_id: str,
        conversation_id: str,
        reset_at: datetime | None,
        turns: Sequence[TurnRecord],
        *,
        dimensions: int,
    ) -> CachedHistory:
        return cls(
            tenant_id, conversation_id, reset_at, (), HistoryVectors.empty(dimensions)
        ).extend(turns)

    def extend(self, new_turns: Sequence[TurnRecord]) -> CachedHistory:
        """This history with ``new_turns`` (newer than every turn held) appended."""
        if not new_turns:
            return self
        if new_turns[0].seq <= self.last_seq or any(
            b.seq <= a.seq for a, b in itertools.pairwise(new_turns)
        ):
            raise ValueError("turns are appended in increasing seq order only")
        added = HistoryVectors.of(new_turns, self.vectors.matrix.shape[1])
        vectors = HistoryVectors(
            matrix=np.concatenate([self.vectors.matrix, added.matrix]),
            embedded=np.concatenate([self.vectors.embedded, added.embedded]),
            seqs=np.concatenate([self.vectors.seqs, added.seqs]),
        )
        turns = (*self.turns, *(_bare(t) for t in new_turns))
        return CachedHistory(self.tenant_id, self.conversation_id, self.reset_at, turns, vectors)

    def missing_embeddings(self) -> list[TurnRecord]:
        """The earlier turns (all but the last) held without an embedding."""
        return [
            t for t, has in zip(self.turns[:-1], self.vectors.embedded[:-1], strict=True) if not has
        ]

    def with_embeddings(self, by_seq: dict[int, npt.NDArray[np.float32]]) -> CachedHistory:
        """This history with the embeddings of turns that had none filled in."""
        if not by_seq:
            return self
        matrix = self.vectors.matrix.copy()
        embedded = self.vectors.embedded.copy()
        for index, turn in enumerate(self.turns):
            if turn.seq in by_seq:
                matrix[index] = by_seq[turn.seq]
                embedded[index] = True
        vectors = HistoryVectors(matrix=matrix, embedded=embedded, seqs=self.vectors.seqs)
        return CachedHistory(
            self.tenant_id, self.conversation_id, self.reset_at, self.turns, vectors
        )


def _bare(turn: TurnRecord) -> TurnRecord:
    if turn.embedding is None:
        return turn
    return TurnRecord(turn.seq, turn.role, turn.content, turn.tokens)


class HistoryCache:
    """Per-conversation histories of one replica, keyed by (tenant, conversation).

    ``max_turns`` bounds the turns held in all (about 1.6 KiB of vector per turn, plus its
    text); ``max_idle_s`` drops a conversation nobody built for that long. ``max_turns``
    of 0 turns the cache off (every build reads the whole history).
    """

    def __init__(
        self,
        *,
        max_turns: int = 50_000,
        max_idle_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_turns < 0 or max_idle_s <= 0:
            raise ValueError("max_turns must be >= 0 and max_idle_s > 0")
        self._max_turns = max_turns
        self._max_idle_s = max_idle_s
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[CachedHistory, float]] = OrderedDict()
        self._turns = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._max_turns > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def turns_held(self) -> int:
        return self._turns

    def get(self, tenant_id: str, conversation_id: str) -> CachedHistory | None:
        """The entry held for this tenant's conversation, if any (not checked against the
        database: the caller compares its ``reset_at`` and fetches the newer turns)."""
        key = (tenant_id, conversation_id)
        found = self._entries.get(key)
        now = self._clock()
        if found is None or now - found[1] > self._max_idle_s:
            if found is not None:
                self._remove(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self._entries[key] = (found[0], now)
        self.hits += 1
        return found[0]

    def put(self, entry: CachedHistory) -> None:
        """Hold ``entry``, unless a longer history since the same reset is held already
        (two builds of one conversation at once: the later read wins)."""
        if not self.enabled or len(entry.turns) > self._max_turns:
            return
        key = (entry.tenant_id, entry.conversation_id)
        held = self._entries.get(key)
        if (
            held is not None
            and held[0].reset_at == entry.reset_at
            and held[0].last_seq > entry.last_seq
        ):
            return
        if held is not None:
            self._remove(key)
        self._entries[key] = (entry, self._clock())
        self._turns += len(entry.turns)
        self._shrink()

    def evict(self, tenant_id: str, conversation_id: str) -> None:
        """Forget a conversation (reset, erased, or found unknown)."""
        self._remove((tenant_id, conversation_id))

    def evict_conversation(self, conversation_id: str) -> None:
        """Forget a conversation whatever the tenant (the ids are unique across tenants)."""
        for key in [k for k in self._entries if k[1] == conversation_id]:
            self._remove(key)

    def clear(self) -> None:
        self._entries.clear()
        self._turns = 0

    def _remove(self, key: tuple[str, str]) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._turns -= len(found[0].turns)

    def _shrink(self) -> None:
        now = self._clock()
        while self._entries:
            key, (_, used) = next(iter(self._entries.items()))
            if self._turns <= self._max_turns and now - used <= self._max_idle_s:
                break
            self._remove(key)


class PromptVectors:
    """The embeddings of prompts just built for, until their turn is recorded.

    ``relevant`` embeds the new prompt to rank the history; after the reply the turn
    recorder would embed the same text again to store it with the turn. The servicer puts
    the vector here and the recorder takes it (when both run on this replica), so each
    prompt is embedded once. Keyed by tenant, conversation and the text's digest; bounded
    (oldest first out).
    """

    def __init__(self, *, max_entries: int = 4096) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str, bytes], npt.NDArray[np.float32]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(tenant_id: str, conversation_id: str, text: str) -> tuple[str, str, bytes]:
        return tenant_id, conversation_id, hashlib.blake2b(text.encode()).digest()

    def put(
        self, tenant_id: str, conversation_id: str, text: str, vector: npt.NDArray[np.float32]
    ) -> None:
        if not self._max:
            return
        self._entries[self._key(tenant_id, conversation_id, text)] = vector
        self._entries.move_to_end(self._key(tenant_id, conversation_id, text))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def take(
        self, tenant_id: str, conversation_id: str, text: str
    ) -> npt.NDArray[np.float32] | None:
        """The vector put for this text, removed; None when this replica has none."""
        return self._entries.pop(self._key(tenant_id, conversation_id, text), None)

    def forget_conversation(self, conversation_id: str) -> None:
        for key in [k for k in self._entries if k[1] == conversation_id]:
            del self._entries[key]
