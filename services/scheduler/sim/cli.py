"""``llmproxy sim run`` and ``llmproxy sim compare``: the simulator on the command line.

Mounted by the top-level CLI through :func:`add_sim_commands`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..core import ClusterConfig, ConfigError, Job, SchedulerError, make_policy
from .compare import BASELINES, PolicySpec, default_specs, format_table, run_comparison
from .configs import PRESETS, load_config_file, paper_config
from .driver import simulate
from .metrics import summarize, write_jobs_csv
from .progress import ProgressBar
from .workload import (
    DEFAULT_DATA_DIR,
    EmpiricalCdf,
    inject_size_error,
    read_trace,
    synthetic_jobs,
    trace_path,
)

__all__ = ["add_sim_commands"]


def _workload_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", help="trace id (0e4a51), trace_<id>.csv, or a CSV path")
    source.add_argument(
        "--workload",
        help="synthetic workload from CDFs: a name under workloads/ (workload_0e4a51, philly...)",
    )
    parser.add_argument("--interarrivals", help="inter-arrival CDF name (default: --workload's)")
    parser.add_argument("--jobs", type=int, default=1000, help="synthetic jobs (default 1000)")
    parser.add_argument("--limit", type=int, help="use only the first N jobs of the trace")
    parser.add_argument("--gpus", type=float, default=64, help="cluster size (default 64)")
    parser.add_argument("--whole-gpus", action="store_true", help="whole-GPU allocations")
    parser.add_argument(
        "--size-error",
        type=float,
        default=0.0,
        metavar="P",
        help="size estimates off by up to ±P%% (uniform)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for sampling and errors")
    parser.add_argument("--no-predict", action="store_true", help="skip predictions")
    parser.add_argument(
        "--prediction-share",
        type=float,
        default=1.0,
        metavar="S",
        help="predict a seeded random share S of the jobs (artifact: min(5000/jobs, 1))",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="pcs data dir")
    parser.add_argument("--json", type=Path, help="write the summary JSON here")


def _load_jobs(args: argparse.Namespace) -> tuple[str, list[Job]]:
    rng = np.random.default_rng(args.seed)
    if args.trace:
        path = trace_path(args.trace, args.data_dir)
        if not path.exists():
            raise ConfigError("--trace", f"{path} does not exist")
        name = path.stem.removeprefix("trace_")
        jobs = read_trace(path, args.limit)
    else:
        base = args.data_dir / "workloads"
        name = args.workload
        arrivals = args.interarrivals or args.workload
        sizes = EmpiricalCdf.read(base / f"cdf-app-service-times-{args.workload}.csv")
        gaps = EmpiricalCdf.read(base / f"cdf-app-interarrival-times-{arrivals}.csv")
        jobs = synthetic_jobs(sizes, gaps, args.jobs, rng)
    return name, inject_size_error(jobs, args.size_error, rng)


def _run(args: argparse.Namespace) -> int:
    name, jobs = _load_jobs(args)
    params: dict[str, object] = {}
    if args.config:
        params["config"] = load_config_file(args.config)
    elif args.preset:
        params["config"] = paper_config(name, args.preset, args.data_dir)
    if args.quantum is not None:
        params["quantum"] = args.quantum
    policy = make_policy(args.policy, **params)
    cluster = ClusterConfig(gpus=args.gpus, whole_gpus=args.whole_gpus)
    bar = None if args.no_progress else ProgressBar(policy.name)
    result = simulate(
        jobs,
        cluster,
        policy,
        predict=not args.no_predict,
        prediction_share=args.prediction_share,
        seed=args.seed,
        progress=bar,
    )
    summary = summarize(result)
    print(format_table([summary], reference=summary.policy))
    if args.jobs_csv:
        write_jobs_csv(result, args.jobs_csv)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"workload": name, "summary": summary.as_dict()}, indent=1))
    return 0


def _compare(args: argparse.Namespace) -> int:
    name, jobs = _load_jobs(args)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    specs = default_specs(name if args.trace else None, policies, presets, args.data_dir)
    if args.config:
        specs.append(PolicySpec("wfq-file", "wfq", {"config": load_config_file(args.config)}))
    cluster = ClusterConfig(gpus=args.gpus, whole_gpus=args.whole_gpus)
    comparison = run_comparison(
        jobs,
        cluster,
        specs,
        predict=not args.no_predict,
        prediction_share=args.prediction_share,
        progress=not args.no_progress,
        jobs_csv_dir=args.jobs_csv_dir,
    )
    print(f"workload {name}: {len(jobs)} jobs on {args.gpus:g} GPUs")
    print(format_table(comparison.summaries))
    if args.plots:
        from .plots import PlotsUnavailableError, plot_cdfs

        try:
            paths = plot_cdfs(
                comparison.results, [s.policy for s in comparison.summaries], args.plots, name
            )
            print("plots:", ", ".join(str(p) for p in paths))
        except PlotsUnavailableError as error:
            print(f"no plots: {error}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "workload": name,
            "gpus": args.gpus,
            "summaries": [s.as_dict() for s in comparison.summaries],
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


def _guard(handler):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except (SchedulerError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return run


def add_sim_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``sim run`` and ``sim compare`` under an existing subparsers object."""
    sim = subparsers.add_parser("sim", help="PCS scheduling simulator")
    commands = sim.add_subparsers(dest="sim_command", required=True)

    run = commands.add_parser("run", help="simulate one policy")
    _workload_args(run)
    run.add_argument("--policy", default="wfq", help="fifo|srsf|las|afs|themis|maxmin|wfq")
    run.add_argument("--config", type=Path, help="WFQ configuration JSON file")
    run.add_argument("--preset", choices=PRESETS, help="the trace's published WFQ point")
    run.add_argument("--quantum", type=float, help="themis re-decision period, s (600)")
    run.add_argument("--jobs-csv", type=Path, help="write per-job outcomes here")
    run.set_defaults(func=_guard(_run))

    compare = commands.add_parser("compare", help="all policies, one table")
    _workload_args(compare)
    compare.add_argument("--policies", default=",".join(BASELINES), help="comma-separated")
    compare.add_argument(
        "--presets", default="pred,jct", help="published WFQ points to add (pred,bal,jct)"
    )
    compare.add_argument("--config", type=Path, help="also run WFQ with this config file")
    compare.add_argument("--plots", type=Path, help="write JCT and error CDF PNGs here")
    compare.add_argument("--jobs-csv-dir", type=Path, help="per-job CSV per policy here")
    compare.set_defaults(func=_guard(_compare))


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m llmproxy.scheduler.sim.cli sim run ...``)."""
    parser = argparse.ArgumentParser(prog="llmproxy")
    add_sim_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
