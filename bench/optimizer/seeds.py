"""NSGA-II (this version), NSGA-II as it was (uniform first generation, configurations may
repeat) and random search over several seeds, at the benchmark's budget and reference point.

``run.py`` measures one seed end to end (database, process pool, plots); this script asks
the same question over seeds, driving the ask/tell loop directly: each distinct
configuration of a trace is simulated once (on a process pool) and shared by every method
and seed, so three methods x three seeds cost far fewer simulations than nine searches.
Seed 1 reproduces ``run.py``'s hypervolumes exactly.

    .venv/bin/python bench/optimizer/seeds.py                  # see README.md
    .venv/bin/python bench/optimizer/seeds.py --smoke          # seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from llmproxy.optimizer.pcs.evaluation import evaluate_candidate, evaluate_mapping
from llmproxy.optimizer.pcs.front import hypervolume, non_dominated
from llmproxy.optimizer.pcs.search import (
    Budget,
    Nsga2Search,
    Nsga2Settings,
    Optimizer,
    RandomSearch,
)
from llmproxy.optimizer.pcs.space import Candidate, SearchSpace
from llmproxy.optimizer.pcs.workload import WorkloadSpec, load_jobs
from llmproxy.scheduler.core import WfqConfig

ROOT = Path(__file__).resolve().parents[2]
OBJ = ("mean_error", "mean_jct")
REFERENCE_ERROR = 25.0
METHODS = {
    "nsga2": lambda space, budget, seed: Nsga2Search(space, OBJ, budget, seed),
    "nsga2-previous": lambda space, budget, seed: Nsga2Search(
        space, OBJ, budget, seed, Nsga2Settings(sampling="random", distinct=False)
    ),
    "random": lambda space, budget, seed: RandomSearch(space, OBJ, budget, seed),
}


def search(
    optimizer: Optimizer,
    spec: WorkloadSpec,
    pool: ProcessPoolExecutor,
    cache: dict[str, dict[str, float]],
    ref: list[float],
) -> dict[str, Any]:
    points: dict[str, dict[str, float]] = {}
    history = []
    while not optimizer.done:
        batch = optimizer.ask()
        todo = {c.config_hash: c for c in batch if c.config_hash not in cache}
        futures = {
            h: pool.submit(evaluate_mapping, spec.to_mapping(), c.to_mapping())
            for h, c in todo.items()
        }
        for h, future in futures.items():
            cache[h] = future.result()
        for c in batch:
            points[c.config_hash] = cache[c.config_hash]
        optimizer.tell([cache[c.config_hash] for c in batch])
        found = list(points.values())
        history.append(hypervolume([found[i] for i in non_dominated(found, OBJ)], OBJ, ref))
    return {"hypervolume": history[-1], "distinct": len(points), "history": history}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", default="0e4a51:all,6c71a0:1500")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="150 jobs, 6 x 2, seeds 1,2")
    parser.add_argument("--out", help="JSON path (default bench/results/optimizer_seeds.json)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.traces, args.seeds, args.population, args.generations = "0e4a51:150", "1,2", 6, 2
    seeds = [int(s) for s in args.seeds.split(",")]
    budget = Budget(args.population, args.generations)
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / "optimizer_seeds.json"
    started, load_at_start = time.perf_counter(), os.getloadavg()
    results = []
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for item in args.traces.split(","):
            name, _, jobs = item.partition(":")
            limit = None if jobs in ("", "all") else int(jobs)
            spec = WorkloadSpec("trace", name, limit=limit, gpus=64, seed=1)
            space = SearchSpace.build(
                "compact", [j.believed_size for j in load_jobs(spec)], spec.gpus
            )
            fifo = evaluate_candidate(spec, Candidate(WfqConfig.single_class()))
            ref = [REFERENCE_ERROR, fifo["jct_mean"]]
            cache: dict[str, dict[str, float]] = {}
            methods: dict[str, Any] = {}
            for method, build in METHODS.items():
                runs = {}
                for seed in seeds:
                    runs[seed] = search(build(space, budget, seed), spec, pool, cache, ref)
                    print(
                        f"{name} {method:<15} seed {seed}: hv {runs[seed]['hypervolume']:.4f} "
                        f"({runs[seed]['distinct']} distinct)",
                        file=sys.stderr,
                        flush=True,
                    )
                values = [r["hypervolume"] for r in runs.values()]
                methods[method] = {
                    "runs": runs,
                    "mean_hypervolume": statistics.mean(values),
                    "min_hypervolume": min(values),
                    "max_hypervolume": max(values),
                }
            results.append(
                {
                    "trace": name,
                    "jobs": limit or "all",
                    "reference_point": ref,
                    "simulations": len(cache),
                    "methods": methods,
                }
            )
    payload = {
        "command": "bench/optimizer/seeds.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
        },
        "budget": dataclasses.asdict(budget),
        "seeds": seeds,
        "nsga2_settings": dataclasses.asdict(Nsga2Settings()),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    print("| trace | method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |")
    print("|---|---|" + "---|" * (len(seeds) + 1))
    for r in results:
        for method, m in r["methods"].items():
            cells = " | ".join(f"{m['runs'][s]['hypervolume']:.4f}" for s in seeds)
            print(f"| {r['trace']} | {method} | {cells} | {m['mean_hypervolume']:.4f} |")
    print(f"\nwrote {out} ({payload['wall_seconds']} s, load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
