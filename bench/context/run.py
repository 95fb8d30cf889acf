"""Context strategies: fact recall vs tokens sent, and context build latency.

Run (from the repository root):

    .venv/bin/python bench/context/run.py                      # full set
    .venv/bin/python bench/context/run.py --smoke              # CI size (about a minute)
    .venv/bin/python bench/context/run.py --summary-local 12 --no-latency
                                                  # + summary, real local model (slow)

Writes bench/results/context[_smoke][_summary].json (or ``--out``) and prints a table. See
bench/context/README.md.

Quality: every strategy plans the context of each synthetic conversation (see
``conversations.py``) with the service's own core (``plan_context``), the real token counter
and the real embedder. Latency: a 200-turn conversation stored in SQLite, ``BuildContext``
called through a real gRPC server in this process (loopback), per strategy, with the CPU
time per build and the load averages around the timed builds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conversations import Conversation, make_set

from llmproxy.context.strategies import (
    ContextRequest,
    Strategy,
    TurnRecord,
    plan_context,
)
from llmproxy.platform.embeddings import Embedder
from llmproxy.platform.tokens import count_tokens

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True, slots=True)
class Config:
    label: str
    strategy: Strategy
    k: int = 0
    token_budget: int = 0


CONFIGS = (
    Config("full", Strategy.FULL),
    Config("last_k k=4", Strategy.LAST_K, k=4),
    Config("last_k k=8", Strategy.LAST_K, k=8),
    Config("token_budget 512", Strategy.TOKEN_BUDGET, token_budget=512),
    Config("token_budget 1024", Strategy.TOKEN_BUDGET, token_budget=1024),
    Config("relevant k=2", Strategy.RELEVANT, k=2),
    Config("relevant k=4", Strategy.RELEVANT, k=4),
    Config("relevant k=6", Strategy.RELEVANT, k=6),
)
SUMMARY = Config("summary", Strategy.SUMMARY)
SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."
DISTANCE_BUCKETS = ((2, 8), (10, 20), (26, 40))


def records(conversation: Conversation, vectors: np.ndarray | None) -> list[TurnRecord]:
    return [
        TurnRecord(
            seq=i + 1,
            role=role,
            content=text,
            tokens=count_tokens(text),
            embedding=None if vectors is None else vectors[i],
        )
        for i, (role, text) in enumerate(conversation.turns)
    ]


def evaluate(
    conversations: Sequence[Conversation],
    configs: Sequence[Config],
    embedder: Embedder,
    summaries: dict[int, tuple[str, int]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per config, one row per conversation: recalled?, tokens sent, tokens of full."""
    rows: dict[str, list[dict[str, Any]]] = {c.label: [] for c in configs}
    for index, conversation in enumerate(conversations):
        texts = [text for _, text in conversation.turns]
        vectors = embedder.embed([*texts, conversation.question])
        history = records(conversation, vectors[:-1])
        for config in configs:
            summary, upto = ("", 0)
            if config.strategy is Strategy.SUMMARY:
                if summaries is None or index not in summaries:
                    continue
                summary, upto = summaries[index]
            plan = plan_context(
                ContextRequest(
                    strategy=config.strategy,
                    system_prompt=SYSTEM_PROMPT,
                    prompt=conversation.question,
                    history=history,
                    k=config.k,
                    token_budget=config.token_budget,
                    summary=summary,
                    summary_upto_seq=upto,
                    prompt_embedding=vectors[-1],
                ),
                count_tokens,
            )
            sent = "\n".join(m.content for m in plan.messages[:-1]).lower()
            rows[config.label].append(
                {
                    "length": len(conversation.turns),
                    "distance": conversation.distance,
                    "recalled": conversation.value.lower() in sent,
                    "tokens_sent": plan.tokens_sent,
                    "tokens_full": plan.tokens_full_history,
                }
            )
    return rows


def summarise_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    long = [r for r in rows if r["length"] >= 20]
    out: dict[str, Any] = {
        "conversations": len(rows),
        "recall": float(np.mean([r["recalled"] for r in rows])) if rows else None,
        "recall_20plus": float(np.mean([r["recalled"] for r in long])) if long else None,
        "token_ratio_20plus": (
            float(np.mean([r["tokens_sent"] / r["tokens_full"] for r in long])) if long else None
        ),
    }
    for low, high in DISTANCE_BUCKETS:
        bucket = [r for r in rows if low <= r["distance"] <= high]
        out[f"recall_d{low}_{high}"] = (
            float(np.mean([r["recalled"] for r in bucket])) if bucket else None
        )
    return out


# --- summary with a real model ---------------------------------------------------------


async def build_summaries(
    conversations: Sequence[Conversation], url: str, limit: int
) -> tuple[dict[int, tuple[str, int]], dict[str, Any]]:
    """Fold each conversation as the service would after every reply; real model calls."""
    from llmproxy.context.summaries import ProviderSummaryModel
    from llmproxy.context.summary import SummaryPolicy, plan_summary_refresh
    from llmproxy.gateway.catalog import load_catalog
    from llmproxy.gateway.providers.openai_compat import OpenAICompatibleProvider

    catalog = load_catalog(None, environ={})
    spec = min(catalog.available(), key=lambda m: m.price.input + m.price.output)
    provider = OpenAICompatibleProvider(spec.name, base_url=url)
    model = ProviderSummaryModel(spec, provider, timeout=timedelta(seconds=300))
    policy = SummaryPolicy()
    result: dict[int, tuple[str, int]] = {}
    calls, seconds = 0, 0.0
    try:
        for index, conversation in enumerate(conversations[:limit]):
            history = records(conversation, None)
            summary, upto = "", 0
            for end in range(2, len(history) + 1, 2):  # after each reply
                while job := plan_summary_refresh(
                    history[:end],
                    summary=summary,
                    summary_upto_seq=upto,
                    policy=policy,
                    count_tokens=count_tokens,
                ):
                    started = time.perf_counter()
                    answer = await model.summarize(
                        job.messages, max_tokens=policy.max_summary_tokens
                    )
                    took = time.perf_counter() - started
                    seconds += took
                    calls += 1
                    print(
                        f"summary: conversation {index + 1}/{min(limit, len(conversations))}, "
                        f"fold {calls} up to turn {job.upto_seq}: {took:.1f} s, "
                        f"{answer.output_tokens} tokens out",
                        file=sys.stderr,
                        flush=True,
                    )
                    if not answer.text:
                        break
                    summary, upto = answer.text, job.upto_seq
            result[index] = (summary, upto)
    finally:
        await provider.close()
    return result, {
        "model": spec.name,
        "calls": calls,
        "seconds_per_call": seconds / max(calls, 1),
        "policy": {
            "keep_recent": policy.keep_recent,
            "min_batch": policy.min_batch,
            "max_input_tokens": policy.max_input_tokens,
            "max_summary_tokens": policy.max_summary_tokens,
        },
    }


def start_local_model(log_dir: Path, *, threads: int) -> tuple[Any, str]:
    """The embedded stack's model server (same model, same arguments, weight repacking off:
    see ``llmproxy.embedded.model_server`` for why)."""
    import httpx

    from llmproxy.embedded.stack import model_server_argv
    from llmproxy.platform.processes import free_port, spawn

    port = free_port()
    argv = model_server_argv(port, threads=threads)
    process = spawn(argv, env={"PATH": "/usr/bin:/bin"}, log_path=log_dir / "model.log")
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"the local model server did not start (see {log_dir / 'model.log'})")


def spread_over_distances(
    eligible: Sequence[Conversation], limit: int, seed: int
) -> list[Conversation]:
    """``limit`` conversations taking each distance in turn (shortest first), so a small
    subset still covers the near facts (kept verbatim) and the far ones (folded)."""
    rng = np.random.default_rng(seed)
    by_distance: dict[int, list[Conversation]] = {}
    for conversation in eligible:
        by_distance.setdefault(conversation.distance, []).append(conversation)
    pools = {d: [c[i] for i in rng.permutation(len(c))] for d, c in sorted(by_distance.items())}
    picked: list[Conversation] = []
    while len(picked) < limit and any(pools.values()):
        for pool in pools.values():
            if pool and len(picked) < limit:
                picked.append(pool.pop())
    return picked


# --- latency ---------------------------------------------------------------------------


async def measure_latency(turns: int, builds: int, embedder: Embedder) -> dict[str, Any]:
    """p50/p95/p99 of BuildContext over gRPC at ``turns`` stored turns, per strategy, and
    the process CPU time per build (client and server share this process; the CPU time
    includes the embedding thread's). ``relevant k=4, no history cache`` is the same build
    with the service's history cache off (every build reads all turns and their vectors),
    through a second server in this process."""
    import grpc

    from llmproxy.context.history_cache import HistoryCache
    from llmproxy.context.repository import ConversationRepository, NewTurn
    from llmproxy.context.servicer import ContextServicer
    from llmproxy.platform.db import create_engine, upgrade
    from llmproxy.platform.db.engine import session_factory
    from llmproxy.platform.embeddings import vector_to_bytes
    from llmproxy.platform.grpc_boundary import BoundaryInterceptor
    from llmproxy.v1 import common_pb2, context_pb2, context_pb2_grpc

    rng = np.random.default_rng(7)
    conversation = make_set(7, lengths=(turns,), distances=(turns // 2,), per_cell=1)[0]
    vectors = embedder.embed([text for _, text in conversation.turns])
    policies = {
        "full": common_pb2.ContextPolicy(strategy=common_pb2.CONTEXT_STRATEGY_FULL),
        "last_k k=8": common_pb2.ContextPolicy(strategy=common_pb2.CONTEXT_STRATEGY_LAST_K, k=8),
        "token_budget 1024": common_pb2.ContextPolicy(
            strategy=common_pb2.CONTEXT_STRATEGY_TOKEN_BUDGET, token_budget=1024
        ),
        "relevant k=4": common_pb2.ContextPolicy(
            strategy=common_pb2.CONTEXT_STRATEGY_RELEVANT, k=4
        ),
        "summary": common_pb2.ContextPolicy(strategy=common_pb2.CONTEXT_STRATEGY_SUMMARY),
    }
    out: dict[str, Any] = {
        "turns": turns,
        "builds": builds,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        await upgrade(url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        now = datetime.now(UTC)
        async with sessions.begin() as session:
            repo = ConversationRepository(session)
            row = await repo.create(tenant_id="bench", app_id="bench", user_id="", now=now)
            for i in range(0, turns, 2):
                await repo.append(
                    row,
                    [
                        NewTurn(role, text, count_tokens(text), vector_to_bytes(vectors[i + j]))
                        for j, (role, text) in enumerate(conversation.turns[i : i + 2])
                    ],
                    request_id=f"r{i}",
                    now=now,
                )
            await repo.save_summary(
                tenant_id="bench",
                conversation_id=row.id,
                summary="notes " * 250,
                upto_seq=turns - 6,
                expected_upto_seq=0,
                expected_reset_at=None,
            )
            conversation_id = row.id
        servers, stubs, channels = [], [], []
        for cache in (HistoryCache(), HistoryCache(max_turns=0)):
            server = grpc.aio.server(interceptors=[BoundaryInterceptor()])
            context_pb2_grpc.add_ContextServicer_to_server(
                ContextServicer(sessions, count_tokens, embedder=embedder, history_cache=cache),
                server,
            )
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            servers.append(server)
            channels.append(channel)
            stubs.append(context_pb2_grpc.ContextStub(channel))
        stub, uncached_stub = stubs
        questions = [c.question for c in make_set(3, lengths=(4,), distances=(2,), per_cell=8)]
        try:
            embed_times, embed_cpu = [], []
            for n in range(builds):
                started, cpu = time.perf_counter(), time.process_time()
                await asyncio.to_thread(embedder.embed, [questions[n % len(questions)] + f" {n}"])
                embed_times.append((time.perf_counter() - started) * 1000)
                embed_cpu.append((time.process_time() - cpu) * 1000)
            out["prompt embedding alone"] = timing(embed_times, embed_cpu)
            # round-robin over strategies, so a busy moment of a shared machine hits all alike
            runs = [(label, policy, stub) for label, policy in policies.items()]
            runs.append(("relevant k=4, no history cache", policies["relevant k=4"], uncached_stub))
            times: dict[str, list[float]] = {label: [] for label, _, _ in runs}
            cpu_times: dict[str, list[float]] = {label: [] for label, _, _ in runs}
            for n in range(builds + 10):
                prompt = questions[int(rng.integers(len(questions)))] + f" ({n})"
                for label, policy, target in runs:
                    request = context_pb2.BuildContextRequest(
                        scope=common_pb2.Scope(tenant_id="bench", conversation_id=conversation_id),
                        system_prompt=SYSTEM_PROMPT,
                        prompt=prompt,
                        policy=policy,
                    )
                    started, cpu = time.perf_counter(), time.process_time()
                    await target.BuildContext(request)
                    if n >= 10:  # warm-up calls excluded
                        times[label].append((time.perf_counter() - started) * 1000)
                        cpu_times[label].append((time.process_time() - cpu) * 1000)
            for label, samples in times.items():
                out[label] = timing(samples, cpu_times[label])
        finally:
            for channel in channels:
                await channel.close()
            for server in servers:
                await server.stop(None)
            await engine.dispose()
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def timing(wall_ms: Sequence[float], cpu_ms: Sequence[float]) -> dict[str, float]:
    """Wall-clock percentiles, and the mean process CPU time per call."""
    out = {f"p{q}_ms": round(float(np.percentile(wall_ms, q)), 2) for q in (50, 95, 99)}
    out["cpu_ms_mean"] = round(float(np.mean(cpu_ms)), 2)
    return out


# --- report ----------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def cheapest_meeting_target(summary: dict[str, dict[str, Any]]) -> str | None:
    """The setting with the fewest tokens among those meeting the target, if any."""
    meeting = [
        (s["token_ratio_20plus"], label)
        for label, s in summary.items()
        if s["recall_20plus"] is not None
        and s["recall_20plus"] >= 0.95
        and s["token_ratio_20plus"] <= 0.40
    ]
    return min(meeting)[1] if meeting else None


def print_table(summary: dict[str, dict[str, Any]], latency: dict[str, Any] | None) -> None:
    print(
        "| strategy | conv. | fact recall | recall, 20+ turns | tokens vs full, 20+ turns "
        "| recall d 2-8 | d 10-20 | d 26-40 | build p50 / p99 ms at "
        f"{latency['turns'] if latency else '-'} turns | CPU ms per build |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, s in summary.items():
        if label == "summary":
            continue
        lat = latency.get(label) if latency else None
        lat_text = f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f}" if lat else "—"
        cpu_text = f"{lat['cpu_ms_mean']:.1f}" if lat else "—"
        print(
            f"| {label} | {s['conversations']} | {pct(s['recall'])} | {pct(s['recall_20plus'])} "
            f"| {pct(s['token_ratio_20plus'])} | {pct(s['recall_d2_8'])} "
            f"| {pct(s['recall_d10_20'])} | {pct(s['recall_d26_40'])} | {lat_text} | {cpu_text} |"
        )
    if latency is None:
        return
    embed = latency["prompt embedding alone"]
    print(
        f"\nprompt embedding alone (part of relevant's build): "
        f"p50 {embed['p50_ms']:.1f} / p99 {embed['p99_ms']:.1f} ms, "
        f"CPU {embed['cpu_ms_mean']:.1f} ms"
    )
    lat = latency["relevant k=4, no history cache"]
    print(
        f"relevant k=4 with the history cache off: p50 {lat['p50_ms']:.1f} / "
        f"p99 {lat['p99_ms']:.1f} ms, CPU {lat['cpu_ms_mean']:.1f} ms"
    )
    print(
        f"load average (1, 5, 15 min) before / after the timed builds: "
        f"{latency['load_average_before']} / {latency['load_average_after']}"
    )
    if "summary" in latency:
        lat = latency["summary"]
        print(
            f"summary build (a stored summary + the unsummarised turns): "
            f"p50 {lat['p50_ms']:.1f} / p99 {lat['p99_ms']:.1f} ms, CPU {lat['cpu_ms_mean']:.1f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small set for CI")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--builds", type=int, default=None, help="timed builds per strategy")
    parser.add_argument(
        "--per-cell", type=int, default=None, help="conversations per (length, distance)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write the JSON here (default: bench/results/)"
    )
    parser.add_argument(
        "--summary-local",
        type=int,
        default=0,
        metavar="N",
        help="also measure summary on the first N conversations with the "
        "local SmolLM2 server (started here; slow on a CPU)",
    )
    parser.add_argument(
        "--summary-url", default="", help="a running server of the catalog's cheapest model"
    )
    parser.add_argument(
        "--summary-max-length",
        type=int,
        default=30,
        help="summary subset drawn from conversations of at most this many turns",
    )
    parser.add_argument(
        "--summary-threads", type=int, default=1, help="llama.cpp threads of the local server"
    )
    parser.add_argument(
        "--no-latency",
        action="store_true",
        help="skip the build latency part (e.g. for a --summary-local run)",
    )
    args = parser.parse_args()

    lengths = (20, 40, 60) if args.smoke else (20, 30, 40, 60, 80)
    distances = (2, 10, 26, 40) if args.smoke else (2, 4, 6, 8, 10, 14, 20, 26, 30, 40)
    per_cell = args.per_cell or (3 if args.smoke else 4)
    builds = args.builds or (100 if args.smoke else 500)
    conversations = make_set(args.seed, lengths=lengths, distances=distances, per_cell=per_cell)
    embedder = Embedder()

    started = time.perf_counter()
    summaries = None
    summary_info: dict[str, Any] = {}
    configs: list[Config] = list(CONFIGS)
    if args.summary_local or args.summary_url:
        eligible = [c for c in conversations if len(c.turns) <= args.summary_max_length]
        limit = min(args.summary_local or len(eligible), len(eligible))
        subset = spread_over_distances(eligible, limit, args.seed)
        process = None
        url = args.summary_url
        if not url:
            log_dir = Path(tempfile.mkdtemp())
            process, url = start_local_model(log_dir, threads=args.summary_threads)
            print(f"model server log: {log_dir / 'model.log'}", file=sys.stderr)
        load_before = [round(x, 2) for x in os.getloadavg()]
        try:
            summaries, summary_info = asyncio.run(build_summaries(subset, url, limit))
        finally:
            if process is not None:
                from llmproxy.platform.processes import stop_process

                stop_process(process, timeout_s=10)
        conversations_for_summary = subset
        summary_rows = evaluate(conversations_for_summary, [SUMMARY], embedder, summaries)
        summary_info.update(
            server=(
                {"url": url}
                if args.summary_url
                else {"threads": args.summary_threads, "weight_repacking": False}
            ),
            load_average_before=load_before,
            load_average_after=[round(x, 2) for x in os.getloadavg()],
            # what the model wrote, for a reader to check the recall by eye
            conversations=[
                {
                    "length": len(c.turns),
                    "distance": c.distance,
                    "value": c.value,
                    "recalled": row["recalled"],
                    "summary_upto_seq": summaries[i][1],
                    "summary": summaries[i][0],
                }
                for i, (c, row) in enumerate(zip(subset, summary_rows["summary"], strict=True))
            ],
        )
    rows = evaluate(conversations, configs, embedder)
    if summaries is not None:
        rows.update(summary_rows)
        # the same subset under the other strategies, for a like-for-like comparison
        for label, sub in evaluate(conversations_for_summary, configs, embedder).items():
            summary_info.setdefault("same_subset", {})[label] = summarise_rows(sub)
    summary = {label: summarise_rows(r) for label, r in rows.items()}
    latency = None if args.no_latency else asyncio.run(measure_latency(200, builds, embedder))
    cheapest = cheapest_meeting_target({k: v for k, v in summary.items() if k != "full"})

    print_table(summary, latency)
    if "summary" in summary:
        print(
            f"\nsummary with {summary_info['model']} ({summary_info['calls']} calls, "
            f"{summary_info['seconds_per_call']:.1f} s each), on its subset of "
            f"{summary['summary']['conversations']} conversations:\n"
        )
        print("| strategy | fact recall | recall d 2-8 | d 10-20 | d 26-40 | tokens vs full, 20+ |")
        print("|---|---|---|---|---|---|")
        for label, s in {"summary": summary["summary"], **summary_info["same_subset"]}.items():
            print(
                f"| {label} | {pct(s['recall'])} | {pct(s['recall_d2_8'])} "
                f"| {pct(s['recall_d10_20'])} | {pct(s['recall_d26_40'])} "
                f"| {pct(s['token_ratio_20plus'])} |"
            )
    print(
        "\nfewest tokens while meeting the target (>= 95% recall at <= 40% of the tokens, "
        f"20+ turns): {cheapest or 'none'}"
    )
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            # a shared machine: the load says how much else ran (1, 5, 15-minute averages)
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "set": {
            "seed": args.seed,
            "lengths": lengths,
            "distances": distances,
            "per_cell": per_cell,
            "conversations": len(conversations),
        },
        "strategies": summary,
        "latency_build_ms": latency,
        "summary_model": summary_info,
        "cheapest_meeting_target": cheapest,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "context_smoke" if args.smoke else "context"
    if summaries is not None:
        name += "_summary"
    path = args.out or RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
