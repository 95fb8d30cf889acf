"""The per-replica history cache: keys, bounds, appends, resets; and ranking from its matrix."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from llmproxy.context.history_cache import CachedHistory, HistoryCache, PromptVectors
from llmproxy.context.strategies import (
    ContextRequest,
    HistoryVectors,
    Strategy,
    TurnRecord,
    plan_context,
)
from llmproxy.platform.embeddings import WordHashEmbedder

DIM = 384
EMBEDDER = WordHashEmbedder()
RESET = datetime(2026, 1, 1, tzinfo=UTC)


def turns(texts: list[str], *, start: int = 1, embedded: bool = True) -> list[TurnRecord]:
    vectors = EMBEDDER.embed(texts)
    return [
        TurnRecord(
            seq=start + i,
            role="user" if (start + i) % 2 else "assistant",
            content=text,
            tokens=len(text.split()),
            embedding=vectors[i] if embedded else None,
        )
        for i, text in enumerate(texts)
    ]


def entry(
    texts: list[str], *, tenant: str = "acme", conversation: str = "c1", reset_at=None
) -> CachedHistory:
    return CachedHistory.build(tenant, conversation, reset_at, turns(texts), dimensions=DIM)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- the entry ---------------------------------------------------------------------------


def test_an_entry_holds_one_matrix_row_per_turn_and_the_turns_without_their_vectors() -> None:
    held = entry(["alpha beta", "gamma", "delta epsilon"])
    assert [t.seq for t in held.turns] == [1, 2, 3] and held.last_seq == 3
    assert all(t.embedding is None for t in held.turns)  # one copy: the matrix's row
    assert held.vectors.matrix.shape == (3, DIM) and held.vectors.embedded.all()
    np.testing.assert_allclose(held.vectors.matrix[1], EMBEDDER.embed(["gamma"])[0])
    assert held.vectors.seqs.tolist() == [1, 2, 3]


def test_extending_appends_newer_turns_and_leaves_the_old_entry_as_it_was() -> None:
    held = entry(["one", "two"])
    longer = held.extend(turns(["three", "four"], start=3))
    assert [t.content for t in longer.turns] == ["one", "two", "three", "four"]
    assert longer.vectors.matrix.shape == (4, DIM) and longer.vectors.seqs.tolist() == [1, 2, 3, 4]
    assert len(held.turns) == 2 and held.vectors.matrix.shape == (2, DIM)  # a snapshot
    assert held.extend([]) is held


@pytest.mark.parametrize("seqs", [[2, 3], [3, 3], [4, 3]])
def test_only_newer_turns_in_order_extend_an_entry(seqs: list[int]) -> None:
    held = entry(["one", "two"])
    bad = [TurnRecord(seq, "user", "x", 1) for seq in seqs]
    with pytest.raises(ValueError, match="increasing seq"):
        held.extend(bad)


def test_turns_without_a_vector_are_marked_and_can_be_filled_in() -> None:
    held = CachedHistory.build(
        "acme", "c1", None, turns(["one", "two", "three"], embedded=False), dimensions=DIM
    )
    # the last turn needs none: it is always sent
    assert [t.seq for t in held.missing_embeddings()] == [1, 2]
    filled = held.with_embeddings({1: EMBEDDER.embed(["one"])[0]})
    assert [t.seq for t in filled.missing_embeddings()] == [2]
    assert filled.vectors.embedded.tolist() == [True, False, False]
    assert not held.vectors.embedded.any()  # the old entry is unchanged


# --- the cache ---------------------------------------------------------------------------


def test_another_tenant_never_gets_an_entry_even_with_the_same_conversation_id() -> None:
    cache = HistoryCache()
    cache.put(entry(["my secret"], tenant="acme", conversation="c1"))
    assert cache.get("intruder", "c1") is None
    assert cache.get("acme", "c1") is not None
    cache.evict_conversation("c1")
    assert cache.get("acme", "c1") is None and cache.turns_held == 0


def test_a_shorter_history_of_the_same_reset_never_replaces_a_longer_one() -> None:
    cache = HistoryCache()
    long = entry(["one", "two", "three"])
    cache.put(long)
    cache.put(entry(["one"]))  # a slower build of the same conversation, read earlier
    assert cache.get("acme", "c1") is long
    after_reset = entry(["new"], reset_at=RESET)
    cache.put(after_reset)  # another reset: it replaces whatever was held
    assert cache.get("acme", "c1") is after_reset
    assert cache.turns_held == 1


def test_the_cache_is_bounded_by_turns_least_recently_used_out_first() -> None:
    cache = HistoryCache(max_turns=5)
    cache.put(entry(["a", "b"], conversation="c1"))
    cache.put(entry(["c", "d"], conversation="c2"))
    assert cache.get("acme", "c1") is not None  # c1 now the most recently used
    cache.put(entry(["e", "f"], conversation="c3"))
    assert cache.get("acme", "c2") is None
    assert cache.get("acme", "c1") is not None and cache.get("acme", "c3") is not None
    assert cache.turns_held == 4
    cache.put(entry(list("abcdef"), conversation="big"))  # larger than the whole cache
    assert cache.get("acme", "big") is None and cache.turns_held == 4


def test_idle_conversations_leave_and_a_zero_size_cache_holds_nothing() -> None:
    clock = FakeClock()
    cache = HistoryCache(max_idle_s=60, clock=clock)
    cache.put(entry(["a"]))
    clock.now = 59
    assert cache.get("acme", "c1") is not None
    clock.now = 120
    assert cache.get("acme", "c1") is None and cache.turns_held == 0 and len(cache) == 0
    off = HistoryCache(max_turns=0)
    off.put(entry(["a"]))
    assert off.get("acme", "c1") is None and not off.enabled


def test_eviction_forgets_one_tenants_conversation() -> None:
    cache = HistoryCache()
    cache.put(entry(["a"], conversation="c1"))
    cache.put(entry(["b"], conversation="c2"))
    cache.evict("acme", "c1")
    assert cache.get("acme", "c1") is None and cache.get("acme", "c2") is not None
    cache.clear()
    assert len(cache) == 0 and cache.turns_held == 0


def test_prompt_vectors_are_taken_once_by_the_same_tenant_and_conversation() -> None:
    memo = PromptVectors(max_entries=2)
    vector = EMBEDDER.embed(["where is my sister"])[0]
    memo.put("acme", "c1", "where is my sister", vector)
    assert memo.take("intruder", "c1", "where is my sister") is None
    assert memo.take("acme", "c2", "where is my sister") is None
    assert memo.take("acme", "c1", "where is my brother") is None
    assert memo.take("acme", "c1", "where is my sister") is vector
    assert memo.take("acme", "c1", "where is my sister") is None
    for n in range(3):
        memo.put("acme", "c1", f"p{n}", vector)
    assert len(memo) == 2 and memo.take("acme", "c1", "p0") is None
    memo.forget_conversation("c1")
    assert len(memo) == 0


# --- ranking from the cached matrix ------------------------------------------------------

HISTORY_TEXTS = [
    "my sister alice moved to lyon",
    "lovely city",
    "pasta recipe please",
    "try carbonara",
    "capital of australia",
    "canberra",
]


def test_relevant_picks_the_same_turns_from_the_cached_matrix_as_from_the_turns() -> None:
    history = turns(HISTORY_TEXTS)
    held = CachedHistory.build("acme", "c1", None, history, dimensions=DIM)
    prompt = EMBEDDER.embed(["which city does my sister alice live in"])[0]

    def plan(**extra):  # type: ignore[no-untyped-def]
        return plan_context(
            ContextRequest(
                strategy=Strategy.RELEVANT,
                system_prompt="",
                prompt="which city does my sister alice live in",
                k=1,
                prompt_embedding=prompt,
                **extra,
            ),
            lambda text: len(text.split()),
        )

    from_turns = plan(history=history)
    from_cache = plan(history=held.turns, history_vectors=held.vectors)
    assert from_cache == from_turns
    assert [m.content for m in from_cache.messages[:-1]] == [HISTORY_TEXTS[0], HISTORY_TEXTS[-1]]


def test_vectors_that_do_not_match_the_history_are_refused() -> None:
    history = turns(HISTORY_TEXTS)
    other = HistoryVectors.of(history[:-1], DIM)
    with pytest.raises(ValueError, match="one row per history turn"):
        plan_context(
            ContextRequest(
                strategy=Strategy.RELEVANT,
                system_prompt="",
                prompt="x",
                history=history,
                prompt_embedding=EMBEDDER.embed(["x"])[0],
                history_vectors=other,
            ),
            lambda text: 1,
        )
