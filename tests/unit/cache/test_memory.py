"""The in-memory core: hits, misses users would notice, TTL, eviction, invalidation."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from llmproxy.cache.eviction import EvictionKind
from llmproxy.cache.index import ExactIndex, IvfIndex
from llmproxy.cache.memory import CacheMemory, HitKind, Target, TargetKind
from llmproxy.cache.policy import Mode
from llmproxy.platform.embeddings import DIMENSIONS
from tests.unit.cache.factories import SCOPE, T0, entry, lookup


def memory(**overrides: object) -> CacheMemory:
    return CacheMemory(dimensions=DIMENSIONS, **overrides)  # type: ignore[arg-type]


def test_exact_repeat_hits_with_metadata() -> None:
    cache = memory()
    cache.put(entry("How do I reset my password?"))
    hit = cache.lookup(lookup("how do I reset my  password"), T0 + timedelta(minutes=3)).hit
    assert hit is not None and hit.kind is HitKind.EXACT
    assert hit.similarity == 1.0 and hit.age == timedelta(minutes=3)
    assert hit.entry.prompt == "How do I reset my password?"


def test_paraphrase_is_a_semantic_hit() -> None:
    cache = memory()
    cache.put(entry("how do I reset my account password"))
    hit = cache.lookup(lookup("how can I reset my account password"), T0).hit
    assert hit is not None and hit.kind is HitKind.SEMANTIC and 0.5 <= hit.similarity < 1


def test_turn_on_vs_turn_off_dark_mode_is_a_miss() -> None:
    cache = memory()
    cache.put(entry("turn on dark mode"))
    result = cache.lookup(lookup("turn off dark mode", threshold=0.5), T0)
    assert result.hit is None
    assert [m.kind.value for _, _, m in result.vetoed] == ["polarity"]


def test_another_tenant_never_sees_an_entry() -> None:
    cache = memory()
    cache.put(entry("What is our refund policy?"))
    other = replace(SCOPE, tenant_id="globex")
    assert cache.lookup(lookup("What is our refund policy?", scope=other), T0).hit is None
    assert cache.stats("globex")["entries"] == 0


def test_the_same_prompt_after_a_different_earlier_turn_misses() -> None:
    cache = memory()
    cache.put(entry("and in winter?", scope=replace(SCOPE, context_fingerprint="paris")))
    rome = replace(SCOPE, context_fingerprint="rome")
    assert cache.lookup(lookup("and in winter?", scope=rome), T0).hit is None


def test_exact_mode_skips_the_semantic_search_and_off_skips_everything() -> None:
    cache = memory()
    cache.put(entry("how do I reset my account password"))
    assert (
        cache.lookup(lookup("how can I reset my account password", mode=Mode.EXACT), T0).hit is None
    )
    assert cache.lookup(lookup("how do I reset my account password", mode=Mode.OFF), T0).hit is None


def test_expired_entries_are_not_served_and_are_swept() -> None:
    cache = memory()
    cache.put(entry("hello there"))
    late = T0 + timedelta(hours=2)
    assert cache.lookup(lookup("hello there"), late).hit is None
    assert len(cache.expire(late)) == 1 and len(cache) == 0


def test_a_huge_prompt_only_matches_when_its_tail_matches() -> None:
    cache = memory()
    document = "lorem ipsum " * 400
    cache.put(entry(document + "summarise chapter one"))
    assert cache.lookup(lookup(document + "summarise chapter two"), T0).hit is None
    assert cache.lookup(lookup(document + "summarise chapter one"), T0).hit is not None


@pytest.mark.parametrize(
    ("kind", "survivor"), [(EvictionKind.LRU, "first"), (EvictionKind.LFU, "first")]
)
def test_the_memory_bound_evicts_the_least_used(kind: EvictionKind, survivor: str) -> None:
    cache = memory(max_entries=2, eviction=kind)
    cache.put(entry("first", n=1))
    cache.put(entry("second", n=2))
    assert cache.lookup(lookup("first"), T0).hit is not None  # used: second is the victim
    evicted = cache.put(entry("third", n=3))
    assert [e.prompt for e in evicted] == ["second"]
    assert cache.stats("acme")["evictions"] == 1 and len(cache) == 2


def test_invalidation_by_conversation_and_app_stays_within_the_tenant() -> None:
    cache = memory()
    cache.put(entry("a", n=1, conversation_id="c1"))
    cache.put(entry("b", n=2, conversation_id="c2"))
    cache.put(entry("a", scope=replace(SCOPE, tenant_id="globex"), n=3, conversation_id="c1"))
    assert len(cache.remove(Target("acme", TargetKind.CONVERSATION, "c1"))) == 1
    assert len(cache.remove(Target("acme", TargetKind.APP, "bot"))) == 1
    assert cache.stats("globex")["entries"] == 1


def test_stats_count_outcomes_per_tenant() -> None:
    cache = memory()
    cache.put(entry("how do I reset my account password"))
    cache.lookup(lookup("how do I reset my account password"), T0)
    cache.lookup(lookup("how can I reset my account password"), T0)
    cache.lookup(lookup("something else entirely"), T0)
    stats = cache.stats("acme")
    assert (stats["exact_hits"], stats["semantic_hits"], stats["misses"]) == (1, 1, 1)
    assert stats["memory_bytes"] > 0


def test_ivf_index_finds_what_exact_search_finds() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(3000, dtype=np.int64)
    exact = ExactIndex(32)
    for i, v in zip(ids, vectors, strict=True):
        exact.add(int(i), v)
    ivf = IvfIndex(ids, vectors)
    query = vectors[42] + 0.05 * rng.standard_normal(32).astype(np.float32)
    query /= np.linalg.norm(query)
    assert exact.search(query, 1)[0].id == ivf.search(query, 1)[0].id == 42
    ivf.remove(42)
    exact.remove(42)
    assert ivf.search(query, 1)[0].id != 42 and exact.search(query, 1)[0].id != 42
    assert len(ivf) == len(exact) == 2999


def test_a_bulk_load_past_the_ann_size_still_finds_and_forgets_entries() -> None:
    cache = memory(ann_min_entries=50)
    prompts = [f"question number {i} about topic {i * 7}" for i in range(120)]
    cache.load([entry(p, n=i) for i, p in enumerate(prompts)])
    hit = cache.lookup(lookup(prompts[42] + " please"), T0).hit
    assert hit is not None and hit.kind is HitKind.SEMANTIC and hit.entry.prompt == prompts[42]
    cache.remove(Target("acme", TargetKind.ENTRY, hit.entry.id))
    assert cache.lookup(lookup(prompts[42] + " please"), T0).hit is None
    assert len(cache) == 119
