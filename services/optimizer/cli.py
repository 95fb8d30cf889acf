"""``llmproxy search run|status|show|apply``: PCS Pareto searches from the command line.

The database is ``--database-url``, else ``$DATABASE_URL``, else the embedded stack's SQLite
file. ``run`` evaluates on a local process pool (``--workers``), or with ``--queue`` through
the ``search.evaluate`` work queue of running optimizer replicas; ``apply`` publishes
``policy.updated`` on NATS (``--nats-url``, else ``$NATS_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from llmproxy.optimizer.pcs.front import PRESETS
from llmproxy.optimizer.pcs.objectives import DEFAULT_OBJECTIVES, OBJECTIVES, ObjectiveError
from llmproxy.optimizer.pcs.search import ALGORITHMS, Budget, BudgetError
from llmproxy.optimizer.pcs.space import SPACES
from llmproxy.optimizer.pcs.workload import WorkloadError, WorkloadSpec
from llmproxy.platform.errors import LLMProxyError

__all__ = ["EtaBar", "add_search_commands"]


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from llmproxy.embedded.stack import default_home

    return f"sqlite:///{default_home() / 'llmproxy.db'}"


def _nats_url(args: argparse.Namespace) -> str:
    return str(args.nats_url or os.environ.get("NATS_URL") or "nats://127.0.0.1:4222")


class EtaBar:
    """``[#####-----] 120/240 evals  gen 5/10  62.1s  ETA 58s`` redrawn on one line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._started = time.perf_counter()

    def __call__(self, progress: Any) -> None:
        done, total = progress.generation, progress.generations
        elapsed = time.perf_counter() - self._started
        eta = elapsed / done * (total - done) if done else float("nan")
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(
            f"\r[{bar}] gen {done}/{total}  {progress.evaluated} configs "
            f"({progress.simulated} simulated)  {elapsed:6.1f}s  ETA {eta:5.0f}s"
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _run(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    from llmproxy.optimizer.repository import SearchRepository
    from llmproxy.platform.db import create_engine, session_factory, upgrade

    async def main() -> int:
        url = _database_url(args)
        if url.startswith("sqlite"):
            await upgrade(url)  # the embedded default: make the tables on first use
        engine = create_engine(url)
        try:
            return await work(SearchRepository(session_factory(engine)))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except LLMProxyError as exc:
        print(f"llmproxy: {exc.message}", file=sys.stderr)
        return 1
    except (WorkloadError, ObjectiveError, BudgetError, ValueError) as exc:
        print(f"llmproxy: {exc}", file=sys.stderr)
        return 2


async def _workload(args: argparse.Namespace, repository: Any) -> WorkloadSpec:
    chosen = [n for n in ("trace", "synthetic", "history") if getattr(args, n)]
    if len(chosen) != 1:
        raise WorkloadError("name exactly one of --trace, --synthetic, --history")
    kind = chosen[0]
    rows: tuple[tuple[float, float, float], ...] = ()
    if kind == "history":
        from llmproxy.optimizer.history import HistoryReader

        rows = await HistoryReader(repository.sessions)(args.history, args.jobs)
    return WorkloadSpec(
        kind,
        getattr(args, kind),
        limit=args.jobs,
        gpus=args.gpus,
        seed=args.seed,
        prediction_share=args.prediction_share,
        rows=rows,
    )


def _print_front(outcome_points: Any, objectives: Any) -> None:
    from llmproxy.optimizer.pcs.objectives import OBJECTIVES as METRIC_OF

    front = [p for p in outcome_points if p.on_front]
    front.sort(key=lambda p: p.metrics[METRIC_OF[objectives[0]]])
    header = "  ".join(f"{o:>14}" for o in objectives)
    print(f"{'preset':<6}  {'candidate':<16}  {header}  configuration")
    for p in front:
        values = "  ".join(f"{p.metrics[METRIC_OF[o]]:>14,.3f}" for o in objectives)
        print(f"{','.join(p.presets):<6}  {p.config_hash:<16}  {values}  {p.candidate.describe()}")


def _write_plots(record: Any, points: Any, out: Path) -> tuple[Path, Path]:
    from llmproxy.optimizer.plots import front_png, write_front_html, write_front_png

    title = f"search {record.search_id}: {record.workload.describe()}"
    png = front_png(points, record.objectives, title=title)
    return (
        write_front_png(out / f"{record.search_id}.png", png),
        write_front_html(
            out / f"{record.search_id}.html", png, points, record.objectives, title=title
        ),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from llmproxy.optimizer.runner import (
        PoolEvaluator,
        create_search,
        make_process_pool,
        run_search,
    )

    async def work(repository: Any) -> int:
        if args.resume:
            record = await repository.get(args.resume)
        else:
            record = await create_search(
                repository,
                workload=await _workload(args, repository),
                objectives=args.objectives.split(","),
                budget=Budget(args.population, args.generations),
                seed=args.seed,
                algorithm=args.algorithm,
                space=args.space,
            )
        print(
            f"search {record.search_id}: {record.workload.describe()}, "
            f"{record.algorithm}/{record.space}, objectives {', '.join(record.objectives)}, "
            f"{record.population} x {record.generations} evaluations, seed {record.seed}",
            file=sys.stderr,
        )
        bar = None if args.quiet else EtaBar()
        if args.queue:
            from llmproxy.optimizer.work_queue import QueueEvaluator
            from llmproxy.platform.bus.jetstream import JetStreamBus

            bus = await JetStreamBus.connect(_nats_url(args), name="llmproxy-search-cli")
            try:
                evaluator: Any = QueueEvaluator(repository, bus, "llmproxy-search-cli")
                outcome = await run_search(repository, record.search_id, evaluator, on_progress=bar)
            finally:
                await bus.close()
        else:
            pool = make_process_pool(args.workers)
            try:
                evaluator = PoolEvaluator(repository, pool, evaluated_by=f"cli-{os.getpid()}")
                outcome = await run_search(repository, record.search_id, evaluator, on_progress=bar)
            finally:
                pool.shutdown(cancel_futures=True)
        failed = f", {len(outcome.failed)} failed (kept off the front)" if outcome.failed else ""
        print(
            f"done in {outcome.wall_seconds:.1f}s: {len(outcome.points)} configurations "
            f"({outcome.simulated} simulated now, {outcome.reused} from the store), "
            f"{len(outcome.front)} on the front{failed}",
            file=sys.stderr,
        )
        _print_front(outcome.points, record.objectives)
        png, html = _write_plots(outcome.record, outcome.points, Path(args.out))
        print(f"plot: {png}\npage: {html}")
        return 0

    return _run(args, work)


def cmd_status(args: argparse.Namespace) -> int:
    async def work(repository: Any) -> int:
        records = (
            [await repository.get(args.search_id)]
            if args.search_id
            else await repository.recent(20)
        )
        if not records:
            print("no searches yet (start one: llmproxy search run --trace 0e4a51)")
        for r in records:
            error = f"  error: {r.error}" if r.error else ""
            print(
                f"{r.search_id}  {r.state:<9}  gen {r.generation}/{r.generations}  "
                f"{r.evaluated} configs  {r.workload.describe()}  "
                f"[{', '.join(r.objectives)}]  {r.created_at:%Y-%m-%d %H:%M}{error}"
            )
        return 0

    return _run(args, work)


def cmd_show(args: argparse.Namespace) -> int:
    async def work(repository: Any) -> int:
        record = await repository.get(args.search_id)
        points = await repository.points(record.search_id)
        print(f"search {record.search_id} ({record.state}): {record.workload.describe()}")
        _print_front(points, record.objectives)
        for p in (p for p in points if p.failed):
            print(f"failed  {p.config_hash:<16}  {p.error}  {p.candidate.describe()}")
        if args.out:
            png, html = _write_plots(record, points, Path(args.out))
            print(f"plot: {png}\npage: {html}")
        return 0

    return _run(args, work)


def cmd_apply(args: argparse.Namespace) -> int:
    from llmproxy.optimizer.apply import apply_point
    from llmproxy.platform.bus.jetstream import JetStreamBus

    async def work(repository: Any) -> int:
        bus = await JetStreamBus.connect(_nats_url(args), name="llmproxy-search-cli", retries=1)
        try:
            applied = await apply_point(
                repository,
                bus,
                args.search_id,
                preset=args.preset,
                candidate_id=args.candidate,
                pool=args.pool,
                source="llmproxy-search-cli",
            )
        finally:
            await bus.close()
        print(f"published policy.updated {applied.policy_id}: {applied.point.candidate.describe()}")
        cap = applied.point.candidate.max_job_gpus
        where = f"pool {args.pool}" if args.pool else "every pool"
        # the event carries the cap (WfqConfig.max_job_gpus; 0 = none) and the live scheduler
        # enforces it: say what that does to jobs already there
        if cap is not None:
            print(
                f"note: {where} now caps each job at {cap} GPUs: waiting and new jobs asking "
                "for more are clipped to it; running jobs keep their GPUs until they end",
                file=sys.stderr,
            )
        else:
            print(
                f"note: this point has no per-job GPU cap: any earlier cap on {where} is "
                "lifted and waiting jobs get back the GPUs they asked for",
                file=sys.stderr,
            )
        return 0

    return _run(args, work)


def add_search_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``search run|status|show|apply`` under an existing subparsers object."""
    search = subparsers.add_parser("search", help="PCS Pareto search over WFQ configurations")
    commands = search.add_subparsers(dest="search_command", required=True)

    def db(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--database-url", help="default: $DATABASE_URL, else the embedded db")

    run = commands.add_parser("run", help="run (or --resume) a search")
    db(run)
    source = run.add_mutually_exclusive_group()
    source.add_argument("--trace", help="trace id (0e4a51), file name or path")
    source.add_argument(
        "--synthetic", help="service=CDF,interarrival=TRACE,jobs=N (CDFs of the PCS data)"
    )
    source.add_argument("--history", metavar="POOL", help="a scheduler pool's completed jobs")
    run.add_argument("--jobs", type=int, help="the first N jobs only")
    run.add_argument("--gpus", type=int, default=64, help="cluster size (64)")
    run.add_argument("--prediction-share", type=float, help="share of jobs predicted")
    run.add_argument(
        "--objectives",
        default=",".join(DEFAULT_OBJECTIVES),
        help=f"two or more of {', '.join(OBJECTIVES)}",
    )
    run.add_argument("--population", type=int, default=24, help="candidates per generation")
    run.add_argument("--generations", type=int, default=10)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--algorithm", choices=ALGORITHMS, default="nsga2")
    run.add_argument("--space", choices=SPACES, default="compact")
    run.add_argument("--workers", type=int, default=2, help="local worker processes (2)")
    run.add_argument("--queue", action="store_true", help="evaluate on optimizer replicas")
    run.add_argument("--nats-url", help="with --queue; default $NATS_URL")
    run.add_argument("--resume", metavar="SEARCH_ID", help="continue a stopped search")
    run.add_argument("--out", default=".", help="folder for the PNG and HTML of the front")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    status = commands.add_parser("status", help="recent searches, or one")
    db(status)
    status.add_argument("search_id", nargs="?")
    status.set_defaults(func=cmd_status)

    show = commands.add_parser("show", help="a search's front and presets")
    db(show)
    show.add_argument("search_id")
    show.add_argument("--out", help="also write the PNG and HTML here")
    show.set_defaults(func=cmd_show)

    apply = commands.add_parser(
        "apply",
        help="publish a front point as the live WFQ config: its classes, weights and per-job "
        "GPU cap (the scheduler clips waiting and new jobs to the cap)",
    )
    db(apply)
    apply.add_argument("search_id")
    point = apply.add_mutually_exclusive_group(required=True)
    point.add_argument(
        "--preset",
        choices=PRESETS,
        help="jct: the lowest JCT on the front; pred: the lowest prediction error among points "
        "at most twice that JCT; bal: the knee between them",
    )
    point.add_argument("--candidate", help="a front point's candidate hash")
    apply.add_argument("--pool", default="", help="the scheduler pool it applies to")
    apply.add_argument("--nats-url", help="default $NATS_URL")
    apply.set_defaults(func=cmd_apply)
