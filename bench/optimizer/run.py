"""PCS optimizer benchmark: NSGA-II vs random search at the same budget vs the published
configurations, on Philly traces (64 GPUs), objectives mean prediction error and mean JCT.

For each trace: the front found, its hypervolume against a fixed reference point (25 % mean
error, the mean JCT of one FIFO class), the evaluations and wall time to reach 95 % and 98 % of
the final hypervolume, the same for random search, and the published pred/bal/jct points.
Each method runs on a fresh SQLite database, so nothing is reused between them.

    .venv/bin/python bench/optimizer/run.py                 # full run (see README.md)
    .venv/bin/python bench/optimizer/run.py --smoke         # CI size, seconds
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmproxy.optimizer.pcs.evaluation import evaluate_candidate
from llmproxy.optimizer.pcs.front import hypervolume, non_dominated
from llmproxy.optimizer.pcs.objectives import OBJECTIVES
from llmproxy.optimizer.pcs.search import Budget, Nsga2Settings
from llmproxy.optimizer.pcs.space import Candidate
from llmproxy.optimizer.pcs.workload import WorkloadSpec
from llmproxy.optimizer.plots import front_png, write_front_png
from llmproxy.optimizer.repository import SearchRepository
from llmproxy.optimizer.runner import (
    PoolEvaluator,
    Progress,
    create_search,
    make_process_pool,
    run_search,
)
from llmproxy.platform.db import create_engine, session_factory, upgrade
from llmproxy.scheduler.core import WfqConfig
from llmproxy.scheduler.sim import paper_config

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
OBJ = ("mean_error", "mean_jct")
MACHINE_NOTE = "2 cores, 24 GiB, shared with other work"
#: the reference point: a mean prediction error no better than AFS's on these traces
#: (17-27 %, bench/pcs/README.md) and the mean JCT of a single FIFO class
REFERENCE_ERROR = 25.0


def reference_point(spec: WorkloadSpec) -> tuple[list[float], dict[str, float]]:
    fifo = evaluate_candidate(spec, Candidate(WfqConfig.single_class()))
    return [REFERENCE_ERROR, fifo["jct_mean"]], fifo


def front_hv(metrics: list[dict[str, float]], ref: list[float]) -> float:
    front = [metrics[i] for i in non_dominated(metrics, OBJ)]
    return hypervolume(front, OBJ, ref)


def reach(history: list[dict[str, float]], final: float, share: float) -> dict[str, float] | None:
    for row in history:
        if row["hv"] >= share * final - 1e-12:
            return {"evaluations": row["evaluations"], "seconds": row["seconds"]}
    return None


async def run_method(
    spec: WorkloadSpec, algorithm: str, budget: Budget, seed: int, workers: int, ref: list[float]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        await upgrade(url)
        engine = create_engine(url)
        repository = SearchRepository(session_factory(engine))
        pool = make_process_pool(workers)
        # start the workers before the clock: their import time is not the search's
        list(pool.map(abs, range(workers)))
        history: list[dict[str, float]] = []
        try:
            record = await create_search(
                repository,
                workload=spec,
                objectives=OBJ,
                budget=budget,
                seed=seed,
                algorithm=algorithm,
            )

            async def on_progress(progress: Progress) -> None:
                points = await repository.points(record.search_id)
                history.append(
                    {
                        "generation": progress.generation,
                        "evaluations": progress.generation * budget.population,
                        "distinct": progress.evaluated,
                        "seconds": round(progress.elapsed_seconds, 2),
                        "hv": front_hv([p.metrics for p in points], ref),
                    }
                )
                print(
                    f"  {algorithm:<6} gen {progress.generation:>3}/{budget.generations} "
                    f"hv {history[-1]['hv']:.4f} {progress.elapsed_seconds:7.1f}s",
                    file=sys.stderr,
                    flush=True,
                )

            outcome = await run_search(
                repository,
                record.search_id,
                PoolEvaluator(repository, pool, evaluated_by=algorithm),
                on_progress=on_progress,
            )
        finally:
            pool.shutdown(cancel_futures=True)
            await engine.dispose()
    final = history[-1]["hv"] if history else 0.0
    return {
        "algorithm": algorithm,
        "search_id": outcome.record.search_id,
        "evaluations": budget.evaluations,
        "distinct_configurations": len(outcome.points),
        "wall_seconds": round(outcome.wall_seconds, 1),
        "hypervolume": final,
        "to_95pct": reach(history, final, 0.95),
        "to_98pct": reach(history, final, 0.98),
        "history": history,
        "front": [
            {
                "candidate": p.config_hash,
                "presets": list(p.presets),
                "config": p.candidate.to_mapping(),
                "describe": p.candidate.describe(),
                **{o: p.metrics[OBJECTIVES[o]] for o in OBJ},
                "p99_error": p.metrics["error_p99"],
                "mean_unfairness": p.metrics["unfairness_mean"],
            }
            for p in sorted(outcome.front, key=lambda p: p.metrics["error_mean"])
        ],
        "_points": outcome.points,
        # every evaluated point, so the hypervolume can be recomputed for another reference
        "points": [
            {
                "candidate": p.config_hash,
                "generation": p.generation,
                "mean_error": p.metrics["error_mean"],
                "mean_jct": p.metrics["jct_mean"],
            }
            for p in outcome.points
        ],
    }


def run_trace(args: argparse.Namespace, trace: str, limit: int | None) -> dict[str, Any]:
    spec = WorkloadSpec("trace", trace, limit=limit, gpus=64, seed=args.seed)
    ref, fifo = reference_point(spec)
    print(f"{trace}: {spec.describe()}; reference point {ref}", file=sys.stderr, flush=True)
    paper: dict[str, dict[str, float]] = {}
    for preset in ("pred", "bal", "jct"):
        try:
            config = paper_config(trace, preset)
        except Exception:
            continue
        paper[preset] = evaluate_candidate(spec, Candidate(config))
    budget = Budget(args.population, args.generations)
    methods = {
        algorithm: asyncio.run(run_method(spec, algorithm, budget, args.seed, args.workers, ref))
        for algorithm in ("nsga2", "random")
    }
    paper_hv = hypervolume(list(paper.values()), OBJ, ref) if paper else None
    nsga_front = [{o: p[o] for o in OBJ} for p in methods["nsga2"]["front"]]
    dominated = {
        name: any(
            f["mean_error"] <= m["error_mean"]
            and f["mean_jct"] <= m["jct_mean"]
            and (f["mean_error"] < m["error_mean"] or f["mean_jct"] < m["jct_mean"])
            for f in nsga_front
        )
        for name, m in paper.items()
    }
    png = front_png(
        methods["nsga2"].pop("_points"),
        OBJ,
        title=f"{trace} ({spec.describe()}): NSGA-II front, published points x",
        references={f"published {k}": v for k, v in paper.items()},
    )
    methods["random"].pop("_points")
    suffix = "_smoke" if args.smoke else ""
    plot = write_front_png(Path(args.plots) / f"optimizer_front_{trace}{suffix}.png", png)
    return {
        "trace": trace,
        "jobs": limit or "all",
        "workload": spec.describe(),
        "reference_point": {"mean_error": ref[0], "mean_jct": ref[1]},
        "fifo_single_class": {k: fifo[k] for k in ("error_mean", "jct_mean")},
        "paper": {
            k: {m: v[m] for m in ("error_mean", "jct_mean", "error_p99", "unfairness_mean")}
            for k, v in paper.items()
        },
        "paper_hypervolume": paper_hv,
        "paper_point_dominated_by_nsga2_front": dominated,
        "methods": methods,
        "plot": str(plot.relative_to(ROOT) if plot.is_relative_to(ROOT) else plot),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| trace | jobs | method | evals | distinct | wall s | HV | 95% at evals / s | "
        "98% at evals / s | front |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, m in r["methods"].items():

            def at(key: str, m: dict[str, Any] = m) -> str:
                v = m[key]
                return "—" if v is None else f"{v['evaluations']} / {v['seconds']:.0f}"

            lines.append(
                f"| {r['trace']} | {r['jobs']} | {name} | {m['evaluations']} | "
                f"{m['distinct_configurations']} | {m['wall_seconds']:.0f} | "
                f"{m['hypervolume']:.4f} | {at('to_95pct')} | {at('to_98pct')} | "
                f"{len(m['front'])} |"
            )
        if r["paper_hypervolume"] is not None:
            lines.append(
                f"| {r['trace']} | {r['jobs']} | published ({', '.join(r['paper'])}) | "
                f"{len(r['paper'])} | | | {r['paper_hypervolume']:.4f} | | | |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--traces", default="0e4a51:all,6c71a0:3000", help="TRACE:JOBS,... (all = every job)"
    )
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="CI size: 150 jobs, 6 x 2")
    parser.add_argument("--out", help="JSON path (default bench/results/optimizer[_smoke].json)")
    parser.add_argument("--plots", default=str(RESULTS), help="folder for the front PNGs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.traces, args.population, args.generations, args.workers = "0e4a51:150", 6, 2, 1
    traces = []
    for item in args.traces.split(","):
        name, _, jobs = item.partition(":")
        traces.append((name, None if jobs in ("", "all") else int(jobs)))
    out = (
        Path(args.out)
        if args.out
        else RESULTS / ("optimizer_smoke.json" if args.smoke else "optimizer.json")
    )
    started = time.perf_counter()
    args.load_at_start = os.getloadavg()
    results: list[dict[str, Any]] = []
    for name, limit in traces:
        results.append(run_trace(args, name, limit))
        payload = write(out, args, argv, results, started)  # a stopped run keeps what it did
    print(table(results))
    print(f"\nwrote {out} ({payload['wall_seconds']} s; {MACHINE_NOTE})")
    return 0


def write(
    out: Path,
    args: argparse.Namespace,
    argv: list[str] | None,
    results: list[dict[str, Any]],
    started: float,
) -> dict[str, Any]:
    payload = {
        "command": "bench/optimizer/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "note": MACHINE_NOTE,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": getattr(args, "load_at_start", None),
            "load_average_at_end": os.getloadavg(),
        },
        "nsga2_settings": dataclasses.asdict(Nsga2Settings()),
        "objectives": list(OBJ),
        "budget": {"population": args.population, "generations": args.generations},
        "workers": args.workers,
        "seed": args.seed,
        "hypervolume": "normalised to the reference box: 0 (nothing) .. 1",
        "wall_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1, default=str))
    return payload


if __name__ == "__main__":
    raise SystemExit(main())
