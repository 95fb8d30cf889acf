"""``llmproxy jobs submit|list|get|cancel|watch``, ``llmproxy cluster`` and
``llmproxy executor run``: the scheduler from the command line.

The scheduler is ``--scheduler HOST:PORT``, else ``$LLMPROXY_SCHEDULER_ADDR``, else
``127.0.0.1:50054``.

Jobs have owners: ``submit`` gives a job ``--owner``, else ``$USER``; ``get``, ``cancel`` and
``watch`` look a job up among that same owner's (``--owner``, else ``$USER``), so another
owner's job answers like an unknown id and a mistyped id cannot cancel someone else's job.
``--any-owner`` skips the check (an operator's view). This scopes; it does not authenticate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from llmproxy.platform.grpc_boundary import error_from_rpc
from llmproxy.v1 import scheduler_pb2, scheduler_pb2_grpc

__all__ = ["add_jobs_commands"]

DEFAULT_ADDRESS = "127.0.0.1:50054"
_STATES = {
    name.removeprefix("JOB_STATE_").lower(): value
    for name, value in scheduler_pb2.JobState.items()
    if value
}


def _address(args: argparse.Namespace) -> str:
    return str(args.scheduler or os.environ.get("LLMPROXY_SCHEDULER_ADDR") or DEFAULT_ADDRESS)


def _call(
    args: argparse.Namespace,
    work: Callable[[scheduler_pb2_grpc.SchedulerStub], Awaitable[None]],
    *,
    not_found_hint: str = "",
) -> int:
    address = _address(args)

    async def main() -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            await work(scheduler_pb2_grpc.SchedulerStub(channel))

    try:
        asyncio.run(main())
    except grpc.aio.AioRpcError as exc:
        message = error_from_rpc(exc, peer=f"the scheduler at {address}").message
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            message += not_found_hint
        print(f"llmproxy: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _when(timestamp: Any) -> str:
    if not timestamp.seconds and not timestamp.nanos:
        return "-"
    return timestamp.ToDatetime(tzinfo=UTC).strftime("%H:%M:%S")


def _eta(job: scheduler_pb2.Job) -> str:
    p = job.prediction
    if not p.HasField("predicted_completion"):
        return "unknown"
    left = p.predicted_completion.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
    return f"{_when(p.predicted_completion)} (in {max(left.total_seconds(), 0):.0f}s)"


def _state(job: scheduler_pb2.Job) -> str:
    return scheduler_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()


def _line(job: scheduler_pb2.Job) -> str:
    return (
        f"{job.job_id}  {_state(job):9}  pool={job.pool} gpus={job.gpu_demand} "
        f"size={job.size_seconds:.0f}s{'~' if job.size_estimated else ''} "
        f"class={job.class_index}  eta={_eta(job)}  ({job.prediction.reason or '-'})"
    )


def _print(job: scheduler_pb2.Job, as_json: bool) -> None:
    if as_json:
        print(json.dumps(MessageToDict(job), sort_keys=True))
    else:
        print(_line(job))


def cmd_submit(args: argparse.Namespace) -> int:
    features = scheduler_pb2.JobFeatures(model_name=args.model or "", user=args.user or "")
    request = scheduler_pb2.SubmitJobRequest(
        kind=scheduler_pb2.JOB_KIND_GPU,
        pool=args.pool,
        owner=args.owner or _default_owner(),
        gpu_demand=args.gpus,
        size_seconds=args.size,
        features=features,
        command=args.command,
        idempotency_key=args.idempotency_key or "",
    )

    async def work(stub: scheduler_pb2_grpc.SchedulerStub) -> None:
        reply = await stub.SubmitJob(request, timeout=10)
        _print(reply.job, args.json)

    return _call(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    request = scheduler_pb2.ListJobsRequest(
        pool=args.pool or "",
        owner=args.owner or "",
        limit=args.limit,
        states=[_STATES[s] for s in args.state or []],
    )

    async def work(stub: scheduler_pb2_grpc.SchedulerStub) -> None:
        reply = await stub.ListJobs(request, timeout=10)
        for job in reply.jobs:
            _print(job, args.json)

    return _call(args, work)


def _default_owner() -> str:
    """The owner ``jobs submit`` gives a job when ``--owner`` is not set: the login name."""
    return os.environ.get("USER", "")


def _ref_owner(args: argparse.Namespace) -> str:
    """The owner ``get``/``cancel``/``watch`` name in their :class:`JobRef`: ``--owner``,
    else the one ``submit`` uses by default; ``--any-owner``: none (no owner check)."""
    if args.any_owner:
        return ""
    return str(args.owner or _default_owner())


def _ref(args: argparse.Namespace) -> scheduler_pb2.JobRef:
    return scheduler_pb2.JobRef(job_id=args.job_id, owner=_ref_owner(args))


def _not_found_hint(args: argparse.Namespace) -> str:
    owner = _ref_owner(args)
    if not owner:
        return ""
    return (
        f" among owner {owner!r}'s jobs (a job submitted with another --owner needs that "
        "--owner, or --any-owner)"
    )


def cmd_get(args: argparse.Namespace) -> int:
    async def work(stub: scheduler_pb2_grpc.SchedulerStub) -> None:
        _print(await stub.GetJob(_ref(args), timeout=10), args.json)

    return _call(args, work, not_found_hint=_not_found_hint(args))


def cmd_cancel(args: argparse.Namespace) -> int:
    async def work(stub: scheduler_pb2_grpc.SchedulerStub) -> None:
        _print(await stub.CancelJob(_ref(args), timeout=10), args.json)

    return _call(args, work, not_found_hint=_not_found_hint(args))


def cmd_watch(args: argparse.Namespace) -> int:
    async def work(stub: scheduler_pb2_grpc.SchedulerStub) -> None:
        async for job in stub.WatchJob(_ref(args)):
            _print(job, args.json)

    return _call(args, work, not_found_hint=_not_found_hint(args))


def cmd_cluster(args: argparse.Namespace) -> int:
    async def work(stub: scheduler_pb2_grpc.SchedulerStub) -> None:
        while True:
            state = await stub.GetClusterState(
                scheduler_pb2.ClusterStateRequest(pool=args.pool), timeout=10
            )
            running = await stub.ListJobs(
                scheduler_pb2.ListJobsRequest(
                    pool=args.pool,
                    states=[
                        scheduler_pb2.JOB_STATE_RUNNING,
                        scheduler_pb2.JOB_STATE_QUEUED,
                        scheduler_pb2.JOB_STATE_PREEMPTED,
                    ],
                    limit=args.limit,
                ),
                timeout=10,
            )
            if args.watch:
                print("\033[2J\033[H", end="")
            print(
                f"pool {state.pool}: {state.allocated:.0f}/{state.capacity} GPUs in use, "
                f"{state.running} running, {state.queued} waiting, policy {state.policy}"
            )
            for c in state.classes:
                bound = (
                    "inf"
                    if math.isinf(c.size_boundary_seconds)
                    else f"{c.size_boundary_seconds:.0f}"
                )
                print(
                    f"  class <= {bound}s  weight {c.weight:.3f}: "
                    f"{c.running} running, {c.queued} waiting"
                )
            for e in state.executors:
                print(
                    f"  executor {e.executor_id}: {e.gpus} GPUs, "
                    f"{'alive' if e.alive else 'LOST'}, last heartbeat {_when(e.last_heartbeat)}"
                )
            if state.size_model.trained_on:
                print(
                    f"  size model: {state.size_model.trained_on} jobs, "
                    f"error {state.size_model.mean_abs_pct_error:.1f}%"
                )
            for job in running.jobs:
                print("  " + _line(job))
            if not args.watch:
                return
            await asyncio.sleep(args.watch)

    return _call(args, work)


def _count_gpus() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def cmd_executor(args: argparse.Namespace) -> int:
    from llmproxy.platform.logs import configure_logging
    from llmproxy.scheduler.executors import ExecutorAgent, ProcessRunner, SimulatedRunner
    from llmproxy.scheduler.executors.runner import Runner

    configure_logging(service="executor", instance=args.id, level="info", fmt="console")
    runner: Runner
    if args.kind == "simulated":
        gpus = args.gpus or args.slots or 1
        runner = SimulatedRunner(time_scale=args.time_scale)
    else:
        detected = _count_gpus()
        use_gpus = args.slots is None and (args.gpus or detected) > 0
        gpus = (args.gpus or detected) if use_gpus else (args.slots or os.cpu_count() or 1)
        runner = ProcessRunner(Path(args.work_dir), use_gpus=use_gpus)
    agent = ExecutorAgent(
        _address(args), runner, executor_id=args.id, pool=args.pool, gpus=gpus, kind=args.kind
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop)
        await agent.run()

    try:
        asyncio.run(main())
    except grpc.aio.AioRpcError as exc:
        print(f"llmproxy: {error_from_rpc(exc, peer='the scheduler').message}", file=sys.stderr)
        return 1
    return 0


def add_jobs_commands(sub: Any) -> None:
    """Register ``jobs``, ``cluster`` and ``executor`` on the ``llmproxy`` parser."""

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--scheduler", help=f"host:port (default {DEFAULT_ADDRESS})")

    jobs = sub.add_parser("jobs", help="submit, list, watch and cancel scheduler jobs")
    actions = jobs.add_subparsers(dest="jobs_action", required=True)

    submit = actions.add_parser("submit", help="submit a job; prints its id and ETA")
    common(submit)
    submit.add_argument("--pool", default="default")
    submit.add_argument("--gpus", type=int, default=1, help="GPUs (or slots) the job needs")
    submit.add_argument(
        "--size", type=float, default=0.0, help="GPU-seconds of work; 0: estimate it"
    )
    submit.add_argument("--model", help="model name (a feature for size estimation)")
    submit.add_argument("--user", help="user (a feature for size estimation)")
    submit.add_argument("--owner", help="the job's owner (default: $USER)")
    submit.add_argument("--idempotency-key")
    submit.add_argument("--json", action="store_true")
    submit.add_argument("command", nargs="?", default="", help="shell command to run")
    submit.set_defaults(func=cmd_submit)

    listing = actions.add_parser("list", help="latest jobs first")
    common(listing)
    listing.add_argument("--pool")
    listing.add_argument("--owner")
    listing.add_argument("--state", action="append", choices=sorted(_STATES))
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    for name, func, text in (
        ("get", cmd_get, "one job"),
        ("cancel", cmd_cancel, "cancel a job (a running one is stopped)"),
        ("watch", cmd_watch, "follow a job's state and ETA until it ends"),
    ):
        parser = actions.add_parser(name, help=text)
        common(parser)
        parser.add_argument("job_id")
        mine = parser.add_mutually_exclusive_group()
        mine.add_argument(
            "--owner",
            help="only a job of this owner (default: $USER, as submit); another owner's job "
            "answers like an unknown id and is left untouched",
        )
        mine.add_argument(
            "--any-owner", action="store_true", help="any owner's job (no owner check)"
        )
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=func)

    cluster = sub.add_parser("cluster", help="GPUs, queues, running jobs and their ETAs")
    common(cluster)
    cluster.add_argument("--pool", default="default")
    cluster.add_argument("--limit", type=int, default=30)
    cluster.add_argument(
        "--watch", type=float, default=0.0, help="refresh every N seconds (0: once)"
    )
    cluster.set_defaults(func=cmd_cluster)

    executor = sub.add_parser("executor", help="run an executor agent")
    executor_actions = executor.add_subparsers(dest="executor_action", required=True)
    run = executor_actions.add_parser("run", help="own GPUs (or slots) and run assigned jobs")
    common(run)
    run.add_argument("--id", required=True, help="executor id (stable across restarts)")
    run.add_argument("--pool", default="default")
    run.add_argument("--kind", choices=["process", "simulated"], default="process")
    run.add_argument("--gpus", type=int, help="GPUs to own (default: all nvidia-smi lists)")
    run.add_argument("--slots", type=int, help="own N slots instead of GPUs")
    run.add_argument("--time-scale", type=float, default=1.0, help="simulated: speed-up")
    run.add_argument("--work-dir", default="executor-jobs", help="process: job logs go here")
    run.set_defaults(func=cmd_executor)
