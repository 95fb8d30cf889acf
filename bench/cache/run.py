"""Cache benchmark (issue 5): match quality over a threshold sweep, and lookup speed.

    .venv/bin/python bench/cache/run.py            # full run -> bench/results/cache.json
    .venv/bin/python bench/cache/run.py --smoke    # CI size -> bench/results/cache_smoke.json

Quality: the pairs of ../shared/data/cache/paraphrase_pairs.json are split in two halves.
The cache holds the origins of half A; the paraphrases of A are asked (a hit on its own
origin is correct, on another entry wrong) and so are the paraphrases of B (their origin
is not cached: every hit is wrong). The hand-written near misses (near_misses.json) are
asked against their first prompt. Every lookup goes through the service's own core
(``CacheMemory``, guard included) with the real embedding model.

Speed: lookup p50/p99 of the core at 10k/100k/1M entries in ONE scope (the worst case:
every entry is a candidate), with random 384-dim unit vectors; the embedding time per
prompt; and the Lookup RPC through gRPC (exact hit and semantic hit, embedding included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import structlog

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"

from llmproxy.cache.keys import (  # noqa: E402
    ScopeKey,
    exact_key,
    normalise_prompt,
    scope_digest,
    semantic_parts,
)
from llmproxy.cache.memory import CacheMemory, Entry, Lookup  # noqa: E402
from llmproxy.cache.policy import Mode  # noqa: E402
from llmproxy.platform.embeddings import DIMENSIONS, Embedder  # noqa: E402

PAIRS = ROOT.parent / "shared" / "data" / "cache" / "paraphrase_pairs.json"
NEAR_MISSES = Path(__file__).with_name("near_misses.json")
#: hand labels of the hits whose entry is not the asked paraphrase's own question
HIT_LABELS = Path(__file__).with_name("hit_labels.json")
T0 = datetime(2025, 11, 24, tzinfo=UTC)
SCOPE = ScopeKey("bench", "app", "objective:cost", "", "")
#: origins at least this similar to a cached origin make their paraphrase's hit ambiguous
AMBIGUOUS = 0.85
THRESHOLDS = [0.70, 0.75, 0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.96]


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def make_entry(i: int, prompt: str, vector: np.ndarray, scope: str) -> Entry:
    _, tail = semantic_parts(prompt)
    return Entry(
        id=f"e{i}", tenant_id="bench", app_id="app", conversation_id="", scope=scope,
        key=exact_key(scope, prompt), prompt=prompt[:2000], tail=tail, answer=f"a{i}",
        model="m", input_tokens=1, cached_input_tokens=0, output_tokens=1, cost_nanousd=1,
        request_id=f"r{i}", created_at=T0, expires_at=T0 + timedelta(days=1), embedding=vector,
    )  # fmt: skip


def ask(memory: CacheMemory, scope: str, prompt: str, vector: np.ndarray, threshold: float):  # type: ignore[no-untyped-def]
    _, tail = semantic_parts(prompt)
    query = Lookup("bench", scope, exact_key(scope, prompt), prompt[:2000], tail,
                   Mode.SEMANTIC, threshold, vector)  # fmt: skip
    return memory.lookup(query, T0)


def _same_question(a: str, b: str) -> bool:
    return normalise_prompt(a.replace("`", "")) == normalise_prompt(b.replace("`", ""))


def quality(embedder: Embedder, limit: int | None) -> dict[str, Any]:
    pairs = json.loads(PAIRS.read_text())[:limit]
    near = json.loads(NEAR_MISSES.read_text())["pairs"]
    labels = {
        (item["asked"], item["matched"]): bool(item["same_question"])
        for item in json.loads(HIT_LABELS.read_text())["labels"]
    }
    half = len(pairs) // 2
    cached = pairs[:half]  # the other half is asked but never cached
    scope = scope_digest(SCOPE)
    started = time.perf_counter()
    all_origins = embedder.embed([semantic_parts(p["origin"])[0] for p in pairs])
    origin_vectors = all_origins[:half]
    asked_vectors = embedder.embed([semantic_parts(p["similar"])[0] for p in pairs])
    near_cached = embedder.embed([semantic_parts(a)[0] for _, a, _ in near])
    near_asked = embedder.embed([semantic_parts(b)[0] for _, _, b in near])
    embed_seconds = time.perf_counter() - started
    memory = CacheMemory(dimensions=DIMENSIONS, max_entries=10**6)
    for i, (pair, vector) in enumerate(zip(cached, origin_vectors, strict=True)):
        memory.put(make_entry(i, pair["origin"], vector, scope))
    near_memory = CacheMemory(dimensions=DIMENSIONS)
    near_scopes = []
    for i, ((_, a, _), vector) in enumerate(zip(near, near_cached, strict=True)):
        near_scope = scope_digest(ScopeKey("bench", "app", "m", "", f"near-{i}"))
        near_scopes.append(near_scope)
        near_memory.put(make_entry(i, a, vector, near_scope))

    cached_origins = [p["origin"] for p in cached]
    answerable = sum(any(_same_question(p["origin"], o) for o in cached_origins) for p in pairs)
    # The data states the same fact in several pairs with other words; a paraphrase of B
    # whose own origin is that close to a cached origin may rightly hit it, and nothing in
    # the data says whether it is wrong. Such hits are counted apart as "ambiguous".
    closest = (all_origins @ origin_vectors.T).max(axis=1)
    ambiguous = {
        i
        for i, p in enumerate(pairs)
        if closest[i] >= AMBIGUOUS
        and not any(_same_question(p["origin"], o) for o in cached_origins)
    }
    sweep: list[dict[str, Any]] = []
    for threshold in THRESHOLDS:
        correct = wrong = unclear = 0
        # by the hand labels: hits on another entry that asks the same thing are right
        labelled_right = labelled_wrong = unlabelled = 0
        for i, pair in enumerate(pairs):
            hit = ask(memory, scope, pair["similar"], asked_vectors[i], threshold).hit
            if hit is None:
                continue
            # the data repeats some origins (a paraphrase of B may ask A's very question)
            if _same_question(hit.entry.prompt, pair["origin"]):
                correct += 1
                continue
            if i in ambiguous:
                unclear += 1
            else:
                wrong += 1
            label = labels.get((pair["similar"], hit.entry.prompt))
            if label is None:
                unlabelled += 1
            elif label:
                labelled_right += 1
            else:
                labelled_wrong += 1
        near_hits: dict[str, int] = {}
        for i, (category, _, b) in enumerate(near):
            if ask(near_memory, near_scopes[i], b, near_asked[i], threshold).hit is not None:
                near_hits[category] = near_hits.get(category, 0) + 1
        hits = correct + wrong + unclear
        sweep.append({
            "threshold": threshold,
            "precision": correct / hits if hits else 1.0,
            "precision_ambiguous_excluded": (
                correct / (correct + wrong) if correct + wrong else 1.0
            ),
            "ambiguous_hits": unclear,
            "precision_hand_labelled": (
                (correct + labelled_right) / (correct + labelled_right + labelled_wrong)
                if correct + labelled_right + labelled_wrong
                else 1.0
            ),
            "hits_labelled_right": labelled_right,
            "hits_labelled_wrong": labelled_wrong,
            "hits_unlabelled": unlabelled,
            "recall": correct / answerable,
            "false_hits": wrong,
            "near_miss_hits": sum(near_hits.values()),
            "near_miss_hits_by_category": near_hits,
        })  # fmt: skip
    # the same sweep without the guard shows what the guard is worth
    unguarded = []
    for threshold in THRESHOLDS:
        sims = [float(near_asked[i] @ near_cached[i]) for i in range(len(near))]
        unguarded.append({"threshold": threshold,
                          "near_miss_hits": sum(s >= threshold for s in sims)})  # fmt: skip
    ok = [r for r in sweep if r["precision"] >= 0.97 and r["near_miss_hits"] == 0]
    ok_ambiguous_excluded = [
        r for r in sweep if r["precision_ambiguous_excluded"] >= 0.97 and r["near_miss_hits"] == 0
    ]
    chosen = max(ok, key=lambda r: r["recall"]) if ok else None
    ok_labelled = [
        r
        for r in sweep
        if r["precision_hand_labelled"] >= 0.97
        and r["near_miss_hits"] == 0
        and r["hits_unlabelled"] == 0
    ]
    return {
        "pairs_cached": len(cached),
        "paraphrases_asked": len(pairs),
        "ambiguous_paraphrases": len(ambiguous),
        "ambiguous_rule": f"own origin cosine >= {AMBIGUOUS} to a cached origin",
        "paraphrases_whose_question_is_cached": answerable,
        "near_miss_pairs": len(near),
        "embedding_seconds_total": embed_seconds,
        "sweep": sweep,
        "near_miss_hits_without_guard": unguarded,
        "operating_point": chosen,
        "operating_point_ambiguous_excluded": (
            max(ok_ambiguous_excluded, key=lambda r: r["recall"]) if ok_ambiguous_excluded else None
        ),
        "hand_labels": str(HIT_LABELS.relative_to(ROOT)),
        "operating_point_hand_labelled": (
            max(ok_labelled, key=lambda r: r["recall"]) if ok_labelled else None
        ),
    }


def embedding_speed(embedder: Embedder, n: int) -> dict[str, float]:
    prompts = [p["similar"] for p in json.loads(PAIRS.read_text())[:n]]
    times = []
    for prompt in prompts:
        started = time.perf_counter()
        embedder.embed([prompt])
        times.append(time.perf_counter() - started)
    return {"prompts": n, "p50_ms": 1e3 * float(np.percentile(times, 50)),
            "p99_ms": 1e3 * float(np.percentile(times, 99))}  # fmt: skip


def lookup_speed(size: int, queries: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, DIMENSIONS), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scope = scope_digest(SCOPE)
    memory = CacheMemory(dimensions=DIMENSIONS, max_entries=size)
    started = time.perf_counter()
    memory.load([make_entry(i, f"prompt {i}", vectors[i], scope) for i in range(size)])
    load_seconds = time.perf_counter() - started
    picks = rng.choice(size, queries, replace=False)
    noise = rng.standard_normal((queries, DIMENSIONS), dtype=np.float32) * 0.01
    asked = vectors[picks] + noise
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    times, found = [], 0
    for j, i in enumerate(picks):
        # a near paraphrase of entry i (same text, so the guard passes; other key, so no
        # exact hit): the nearest-neighbour search is what is timed
        prompt = f"prompt {i}"
        query = Lookup("bench", scope, "not-a-key", prompt, "", Mode.SEMANTIC, 0.9, asked[j])
        started = time.perf_counter()
        result = memory.lookup(query, T0)
        times.append(time.perf_counter() - started)
        found += result.hit is not None and result.hit.entry.id == f"e{i}"
    return {"entries": size, "queries": queries, "load_seconds": load_seconds,
            "p50_ms": 1e3 * float(np.percentile(times, 50)),
            "p99_ms": 1e3 * float(np.percentile(times, 99)),
            "found_own_entry": found / queries,
            "index": type(memory._index._scopes[scope]).__name__}  # fmt: skip


async def rpc_speed(embedder: Embedder, entries: int, queries: int) -> dict[str, Any]:
    """The Lookup RPC through gRPC on this machine (client and server in one process)."""
    import grpc

    from llmproxy.cache.engine import ResponseCache
    from llmproxy.cache.servicer import CacheServicer
    from llmproxy.platform.bus.memory import InMemoryBus
    from llmproxy.platform.grpc_boundary import BoundaryInterceptor
    from llmproxy.v1 import cache_pb2, cache_pb2_grpc, common_pb2

    pairs = json.loads(PAIRS.read_text())[:queries]
    scope = scope_digest(SCOPE)
    rng = np.random.default_rng(1)
    filler = rng.standard_normal((entries, DIMENSIONS), dtype=np.float32)
    filler /= np.linalg.norm(filler, axis=1, keepdims=True)
    memory = CacheMemory(dimensions=DIMENSIONS, max_entries=entries + len(pairs))
    memory.load([make_entry(10**7 + i, f"filler {i}", filler[i], scope) for i in range(entries)])
    origins = embedder.embed([p["origin"] for p in pairs])
    for i, (pair, vector) in enumerate(zip(pairs, origins, strict=True)):
        memory.put(make_entry(i, pair["origin"], vector, scope))
    cache = ResponseCache(memory, None, InMemoryBus(), embedder, clock=lambda: T0)  # type: ignore[arg-type]
    server = grpc.aio.server(interceptors=[BoundaryInterceptor()])
    cache_pb2_grpc.add_CacheServicer_to_server(CacheServicer(cache), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    key = cache_pb2.CacheScopeKey(scope=common_pb2.Scope(tenant_id="bench", app_id="app"),
                                  model_class="objective:cost")  # fmt: skip
    results: dict[str, Any] = {"filler_entries": entries}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = cache_pb2_grpc.CacheStub(channel)
            for label, field in (("exact_hit", "origin"), ("semantic_lookup", "similar")):
                times, hits = [], 0
                for pair in pairs:
                    request = cache_pb2.CacheLookupRequest(key=key, prompt=pair[field])
                    started = time.perf_counter()
                    reply = await stub.Lookup(request)
                    times.append(time.perf_counter() - started)
                    hits += reply.report.outcome in (2, 3)
                results[label] = {"queries": len(pairs), "hits": hits,
                                  "p50_ms": 1e3 * float(np.percentile(times, 50)),
                                  "p99_ms": 1e3 * float(np.percentile(times, 99))}  # fmt: skip
    finally:
        await server.stop(None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes for CI")
    parser.add_argument("--out", help="result file (default bench/results/cache[_smoke].json)")
    parser.add_argument(
        "--quality-only",
        action="store_true",
        help="measure quality alone and replace that part of the existing result file",
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if not PAIRS.is_file():
        sys.exit(f"missing {PAIRS} (the shared data); nothing measured")
    sizes = [10_000] if args.smoke else [10_000, 100_000, 1_000_000]
    embedder = Embedder()
    embedder.embed(["warm up"])
    path = Path(args.out) if args.out else RESULTS / f"cache{'_smoke' if args.smoke else ''}.json"
    if args.quality_only:
        result = json.loads(path.read_text())
        result["quality"] = quality(embedder, 200 if args.smoke else None)
        result["quality_command"] = " ".join(["python", "bench/cache/run.py", *sys.argv[1:]])
        path.write_text(json.dumps(result, indent=1))
        print_tables(result)
        print(f"\nwrote {path} (quality part)")
        return
    result: dict[str, Any] = {"machine": machine(), "smoke": args.smoke}
    result["quality"] = quality(embedder, 200 if args.smoke else None)
    result["embedding"] = embedding_speed(embedder, 50 if args.smoke else 300)
    result["lookup"] = [lookup_speed(size, 200 if args.smoke else 1000) for size in sizes]
    result["rpc"] = asyncio.run(rpc_speed(embedder, 1000 if args.smoke else 10_000,
                                          50 if args.smoke else 300))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print_tables(result)
    print(f"\nwrote {path}")


def print_tables(result: dict[str, Any]) -> None:
    q = result["quality"]
    print(f"\nQuality: {q['pairs_cached']} origins cached, {q['paraphrases_asked']} paraphrases "
          f"asked ({q['paraphrases_whose_question_is_cached']} of them answerable), "
          f"{q['near_miss_pairs']} near misses")  # fmt: skip
    print(f"{q['ambiguous_paraphrases']} paraphrases are ambiguous ({q['ambiguous_rule']})")
    print("| threshold | precision | precision, ambiguous excluded | precision, hand-labelled "
          "| recall | false hits | ambiguous hits | labelled right / wrong / unlabelled "
          "| near-miss hits | same, no guard |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row, bare in zip(q["sweep"], q["near_miss_hits_without_guard"], strict=True):
        print(f"| {row['threshold']:.2f} | {row['precision']:.3f} | "
              f"{row['precision_ambiguous_excluded']:.3f} | "
              f"{row.get('precision_hand_labelled', float('nan')):.3f} | {row['recall']:.3f} | "
              f"{row['false_hits']} | {row['ambiguous_hits']} | "
              f"{row.get('hits_labelled_right')} / {row.get('hits_labelled_wrong')} / "
              f"{row.get('hits_unlabelled')} | {row['near_miss_hits']} | "
              f"{bare['near_miss_hits']} |")  # fmt: skip
    point = q["operating_point"]
    print(f"operating point: {point['threshold'] if point else 'none meets the target'}")
    point = q["operating_point_ambiguous_excluded"]
    print(
        "operating point, ambiguous excluded: "
        f"{point['threshold'] if point else 'none meets the target'}"
    )
    point = q.get("operating_point_hand_labelled")
    print(
        "operating point, hand-labelled (every hit judged): "
        f"{point['threshold'] if point else 'none meets the target'}"
    )
    e = result["embedding"]
    print(
        f"\nEmbedding ({e['prompts']} prompts): p50 {e['p50_ms']:.2f} ms, p99 {e['p99_ms']:.2f} ms"
    )
    print("\n| entries (one scope) | index | load s | lookup p50 ms | lookup p99 ms | found own |")
    print("|---|---|---|---|---|---|")
    for row in result["lookup"]:
        print(f"| {row['entries']:,} | {row['index']} | {row['load_seconds']:.1f} | "
              f"{row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
              f"{row['found_own_entry']:.3f} |")  # fmt: skip
    rpc = result["rpc"]
    print(f"\nLookup RPC over gRPC ({rpc['filler_entries']:,} other entries in the scope)")
    print("| kind | queries | hits | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for label in ("exact_hit", "semantic_lookup"):
        row = rpc[label]
        print(f"| {label} | {row['queries']} | {row['hits']} | {row['p50_ms']:.2f} | "
              f"{row['p99_ms']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
