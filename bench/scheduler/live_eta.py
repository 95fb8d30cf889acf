"""ETA error of the live scheduler service against actuals, on trace 0e4a51 replayed in
accelerated time through simulated executors; and SubmitJob latency with jobs queued.

    .venv/bin/python bench/scheduler/live_eta.py            # 150 jobs, about 90 s
    .venv/bin/python bench/scheduler/live_eta.py --smoke    # 25 jobs, a few seconds

Three numbers for one trace prefix and one configuration (FIFO, or a published WFQ preset):

* ``offline simulator``: the PCS simulator (fluid model, fractional GPUs, one 64-GPU pool);
* ``live core, offline``: the live scheduler's pure core (gang jobs on whole executors) driven
  event by event with exact timing: the error the live scheduling model itself has;
* ``live service``: the real service (gRPC, SQLite, the engine) with ``--executors``
  simulated executor agents over gRPC, the trace compressed to about ``--duration`` seconds.

Each job's error is ``100 |predicted JCT - actual JCT| / predicted JCT`` with the prediction
given at submission, as in the simulator. Sizes are exact (the submitter gives the trace's
size), so the errors come from later arrivals and, live, from the service's own delays.
Events are not published in this run (no NATS); everything else is the product's code.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "pcs"))

from _common import machine, result_path, write_result  # noqa: E402

from llmproxy.platform.db import create_engine, session_factory, upgrade  # noqa: E402
from llmproxy.scheduler.core import ClusterConfig, Job, WfqConfig, make_policy  # noqa: E402
from llmproxy.scheduler.engine import SchedulerEngine  # noqa: E402
from llmproxy.scheduler.executors import ExecutorAgent, SimulatedRunner  # noqa: E402
from llmproxy.scheduler.live import (  # noqa: E402
    Changes,
    JobState,
    LiveScheduler,
    Progress,
    SubmitSpec,
    Tolerance,
)
from llmproxy.scheduler.repository import SchedulerRepository  # noqa: E402
from llmproxy.scheduler.servicer import SchedulerServicer  # noqa: E402
from llmproxy.scheduler.sim import (  # noqa: E402
    DEFAULT_DATA_DIR,
    paper_config,
    prediction_error,
    read_trace,
    simulate,
    trace_path,
)
from llmproxy.scheduler.sizing import SizeEstimator  # noqa: E402
from llmproxy.scheduler.timebase import TimeBase  # noqa: E402
from llmproxy.v1 import scheduler_pb2, scheduler_pb2_grpc  # noqa: E402

TRACE = "0e4a51"
ENVIRONMENT = "2 cores, 24 GiB, shared with other work"


def summary(errors: np.ndarray) -> dict[str, float]:
    errors = errors[np.isfinite(errors)]
    if len(errors) == 0:
        return {"jobs": 0, "mean": math.nan, "p50": math.nan, "p95": math.nan}
    return {
        "jobs": len(errors),
        "mean": float(errors.mean()),
        "p50": float(np.percentile(errors, 50)),
        "p95": float(np.percentile(errors, 95)),
    }


def config_for(policy: str) -> WfqConfig:
    if policy == "fifo":
        return WfqConfig.single_class()
    return paper_config(TRACE, policy.removeprefix("wfq-"), DEFAULT_DATA_DIR)


# ------------------------------------------------------------------ offline references
def offline_simulator(jobs: list[Job], gpus: int, config: WfqConfig) -> np.ndarray:
    """Per-job errors, in job order."""
    result = simulate(jobs, ClusterConfig(gpus=gpus), make_policy("wfq", config=config))
    order = {job_id: i for i, job_id in enumerate(result.job_id.tolist())}
    errors = prediction_error(result)
    return np.array([errors[order[j.job_id]] for j in jobs])


def live_core_offline(
    jobs: list[Job], executors: int, per_executor: int, config: WfqConfig
) -> tuple[np.ndarray, float]:
    """The live core driven by exact events; per-job errors in job order, and the makespan."""
    core = LiveScheduler(executor_timeout=1e18, default_config=config, tolerance=Tolerance())
    for i in range(executors):
        core.register_executor(f"e{i}", "trace", per_executor, "simulated", 0.0)
    predicted: dict[str, float] = {}
    arrival: dict[str, float] = {}
    actual: dict[str, float] = {}
    pending = sorted(jobs, key=lambda j: j.arrival)
    now = 0.0
    index = 0
    while index < len(pending) or core.active_jobs():
        running = [j for j in core.active_jobs() if j.state is JobState.RUNNING]
        next_end = min(
            (j.run_started_at + j.size / j.demand for j in running if j.run_started_at is not None),
            default=math.inf,
        )
        next_arrival = pending[index].arrival if index < len(pending) else math.inf
        if next_end <= next_arrival:
            now = next_end
            job = min(running, key=lambda j: j.run_started_at + j.size / j.demand)
            core.heartbeat(job.executor_id, [Progress(job.job_id, job.size, finished=True)], now)
            actual[job.job_id] = now
        else:
            now = next_arrival
            trace_job = pending[index]
            index += 1
            job_id = str(trace_job.job_id)
            changes = core.submit(
                SubmitSpec(job_id, "trace", int(trace_job.demand), trace_job.size), now
            )
            prediction = changes.jobs[job_id].prediction
            assert prediction is not None and prediction.completion is not None
            predicted[job_id] = prediction.completion
            arrival[job_id] = now
    ids = [str(j.job_id) for j in jobs]
    p = np.array([predicted[i] - arrival[i] for i in ids])
    a = np.array([actual[i] - arrival[i] for i in ids])
    return 100 * np.abs(p - a) / p, now


# ------------------------------------------------------------------ the live service
class LiveService:
    """The scheduler's engine and servicer on a real gRPC server and SQLite database."""

    def __init__(self, directory: Path, scale: float, config: WfqConfig) -> None:
        self.directory = directory
        self.scale = scale
        self.config = config

    async def __aenter__(self) -> LiveService:
        url = f"sqlite:///{self.directory / 'scheduler.db'}"
        await upgrade(url)
        self.engine_db = create_engine(url)
        self.time = TimeBase(scale=self.scale)
        core = LiveScheduler(
            executor_timeout=30.0 * self.scale,
            default_config=self.config,
            # revise only what moved by more than about 50 ms of wall time
            tolerance=Tolerance(absolute=0.05 * self.scale),
        )
        self.engine = SchedulerEngine(
            core,
            SchedulerRepository(session_factory(self.engine_db), self.time),
            None,
            self.time,
            # sizes are given: no refits of the size model competing for the CPU mid-run
            sizes=SizeEstimator(retrain_every=10**9),
        )
        await self.engine.start(expiry_interval=1.0)
        self.server = grpc.aio.server()
        scheduler_pb2_grpc.add_SchedulerServicer_to_server(
            SchedulerServicer(self.engine, heartbeat_interval=0.25), self.server
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.address = f"127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(1)
        await self.engine.stop()
        await self.engine_db.dispose()


async def live_service(
    jobs: list[Job], executors: int, per_executor: int, config: WfqConfig, scale: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-job errors in job order, and run facts."""
    with tempfile.TemporaryDirectory() as tmp:
        async with LiveService(Path(tmp), scale, config) as service:
            agents = [
                ExecutorAgent(
                    service.address,
                    SimulatedRunner(time_scale=scale),
                    executor_id=f"sim-{i}",
                    pool="trace",
                    gpus=per_executor,
                    kind="simulated",
                )
                for i in range(executors)
            ]
            tasks = [asyncio.create_task(a.run()) for a in agents]
            async with grpc.aio.insecure_channel(service.address) as channel:
                stub = scheduler_pb2_grpc.SchedulerStub(channel)
                while True:
                    state = service.engine.core.pools()
                    if state and service.engine.core.pool_state("trace").capacity == (
                        executors * per_executor
                    ):
                        break
                    await asyncio.sleep(0.05)
                started = time.monotonic()
                ids: list[str] = []
                submit_lag: list[float] = []
                for job in sorted(jobs, key=lambda j: j.arrival):
                    due = started + job.arrival / scale
                    await asyncio.sleep(max(due - time.monotonic(), 0.0))
                    submit_lag.append(max(time.monotonic() - due, 0.0) * scale)
                    reply = await stub.SubmitJob(
                        scheduler_pb2.SubmitJobRequest(
                            pool="trace",
                            gpu_demand=int(job.demand),
                            size_seconds=job.size,
                            command=f"sim:{job.size}",
                            idempotency_key=f"trace-{job.job_id}",
                        )
                    )
                    ids.append(reply.job.job_id)
                finals = []
                for job_id in ids:
                    while True:
                        job = await stub.GetJob(scheduler_pb2.JobRef(job_id=job_id))
                        if job.state == scheduler_pb2.JOB_STATE_COMPLETED:
                            finals.append(job)
                            break
                        await asyncio.sleep(0.2)
                wall = time.monotonic() - started
            for agent in agents:
                agent.stop()
            await asyncio.gather(*tasks)
    submitted = np.array([j.submitted_at.ToNanoseconds() / 1e9 for j in finals]) * scale
    predicted = (
        np.array([j.first_prediction.predicted_completion.ToNanoseconds() / 1e9 for j in finals])
        * scale
    )
    completed = np.array([j.completed_at.ToNanoseconds() / 1e9 for j in finals]) * scale
    p = predicted - submitted
    a = completed - submitted
    return 100 * np.abs(p - a) / p, {
        "wall_seconds": wall,
        "time_scale": scale,
        "submit_lag_core_seconds_p95": float(np.percentile(submit_lag, 95)),
    }


async def prefill(service: LiveService, pool: str, queued: int, size: float) -> None:
    """Queue ``queued`` jobs through the engine's core and repository in one write (set-up,
    not measured: 10,000 SubmitJob calls one by one would take minutes)."""
    engine = service.engine
    changes = Changes()
    for i in range(queued):
        spec = SubmitSpec(job_id=f"prefill-{i}", pool=pool, demand=1, size=size)
        changes.merge(engine.core.submit(spec, engine.time.now()))
    await engine.repository.save(changes)


async def submit_latency(queued: int, calls: int) -> dict[str, Any]:
    """SubmitJob latency over gRPC with ``queued`` jobs waiting (one busy 1-GPU executor)."""
    with tempfile.TemporaryDirectory() as tmp:
        async with LiveService(Path(tmp), 1.0, WfqConfig.single_class()) as service:
            await service.engine.register_executor("busy", "q", 1, "simulated")
            await prefill(service, "q", queued, 60.0)
            async with grpc.aio.insecure_channel(service.address) as channel:
                stub = scheduler_pb2_grpc.SchedulerStub(channel)
                request = scheduler_pb2.SubmitJobRequest(pool="q", gpu_demand=1, size_seconds=60)
                for _ in range(5):  # warm the channel and the statement caches
                    await stub.SubmitJob(request)
                load_before = os.getloadavg()
                timings = []
                for _ in range(calls):
                    began = time.perf_counter()
                    await stub.SubmitJob(request)
                    timings.append((time.perf_counter() - began) * 1000)
                load_after = os.getloadavg()
            # the core alone (the algorithmic part, no gRPC and no database), same queue
            core_timings = []
            for i in range(calls):
                spec = SubmitSpec(job_id=f"core-{i}", pool="q", demand=1, size=60.0)
                began = time.perf_counter()
                service.engine.core.submit(spec, service.engine.time.now())
                core_timings.append((time.perf_counter() - began) * 1000)
    values = np.array(timings)
    core = np.array(core_timings)
    return {
        "queued": queued,
        "calls": calls,
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "core_only_p50_ms": float(np.percentile(core, 50)),
        "core_only_p99_ms": float(np.percentile(core, 99)),
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
    }


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [f"{'run':<22} {'jobs':>5} {'mean %':>8} {'p50 %':>8} {'p95 %':>8}"]
    for name, r in rows:
        lines.append(
            f"{name:<22} {r['jobs']:>5} {r['mean']:>8.2f} {r['p50']:>8.2f} {r['p95']:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="25 jobs, short; for CI")
    parser.add_argument("--jobs", type=int, default=150)
    parser.add_argument("--policy", default="fifo", help="fifo, or wfq-pred|wfq-bal|wfq-jct")
    parser.add_argument("--executors", type=int, default=8)
    parser.add_argument("--gpus-per-executor", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="wall seconds to aim at")
    parser.add_argument("--time-scale", type=float, help="fixed compression (default: fit)")
    parser.add_argument("--min-wall", type=float, default=1.0, help="see 'long' in the table")
    parser.add_argument("--latency-queued", type=int, nargs="*", default=[100, 1000, 10000])
    parser.add_argument("--latency-calls", type=int, default=200, help="SubmitJob calls timed")
    parser.add_argument(
        "--latency-only", action="store_true", help="only the SubmitJob latency (no replay)"
    )
    parser.add_argument("--out", help="result JSON (default bench/results/scheduler_live.json)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.duration, args.latency_queued = 25, 4.0, [100]
    path = trace_path(TRACE, DEFAULT_DATA_DIR)
    if not path.exists():
        print(f"{path} is absent (shared PCS data not checked out)", file=sys.stderr)
        return 2
    jobs = read_trace(path, limit=args.jobs)
    config = config_for(args.policy)
    gpus = args.executors * args.gpus_per_executor

    calls = 30 if args.smoke else args.latency_calls
    latency = [asyncio.run(submit_latency(n, calls)) for n in args.latency_queued]
    print(
        f"{'queued':>8} {'SubmitJob p50 ms':>17} {'p99 ms':>8} {'core p50 ms':>12} "
        f"{'core p99 ms':>12}  load average (1, 5, 15 min)"
    )
    for row in latency:
        print(
            f"{row['queued']:>8} {row['p50_ms']:>17.1f} {row['p99_ms']:>8.1f} "
            f"{row['core_only_p50_ms']:>12.3f} {row['core_only_p99_ms']:>12.3f}  "
            f"{row['loadavg_1_5_15_before']}"
        )
    if args.latency_only:
        out = result_path("scheduler_submit_latency", args.out)
        write_result(
            out,
            {
                "command": " ".join(
                    ["python", "bench/scheduler/live_eta.py", *(argv or sys.argv[1:])]
                ),
                "environment": ENVIRONMENT,
                "machine": machine(),
                "submit_latency": latency,
            },
        )
        print(f"wrote {out}")
        return 0
    sim = offline_simulator(jobs, gpus, config)
    core, makespan = live_core_offline(jobs, args.executors, args.gpus_per_executor, config)
    scale = args.time_scale or makespan / args.duration
    live, facts = asyncio.run(
        live_service(jobs, args.executors, args.gpus_per_executor, config, scale)
    )

    # jobs whose ideal run lasts at least --min-wall wall seconds at this compression: for
    # shorter ones the service's fixed delays (milliseconds, times the scale) dominate
    ideal = np.array([j.size / j.demand for j in jobs])
    long = ideal >= args.min_wall * scale
    results = {
        "offline_simulator": {"all": summary(sim), "long": summary(sim[long])},
        "live_core_offline": {"all": summary(core), "long": summary(core[long])},
        "live_service": {"all": summary(live), "long": summary(live[long]), **facts},
    }
    print(
        f"trace {TRACE}, first {len(jobs)} jobs, {args.policy}, {gpus} GPUs "
        f"({args.executors} executors x {args.gpus_per_executor}); live at {scale:.0f}x "
        f"for {facts['wall_seconds']:.0f} s wall; 'long' = ideal run >= {args.min_wall:g} "
        f"wall s ({int(long.sum())} jobs)"
    )
    rows = []
    for name, key in (
        ("offline simulator", "offline_simulator"),
        ("live core, offline", "live_core_offline"),
        ("live service", "live_service"),
    ):
        rows.append((name, results[key]["all"]))
        rows.append((f"  {name}, long", results[key]["long"]))
    print(table(rows))
    out = result_path("scheduler_live_smoke" if args.smoke else "scheduler_live", args.out)
    write_result(
        out,
        {
            "command": " ".join(["python", "bench/scheduler/live_eta.py", *(argv or sys.argv[1:])]),
            "environment": ENVIRONMENT,
            "machine": machine(),
            "trace": TRACE,
            "jobs": len(jobs),
            "policy": args.policy,
            "gpus": gpus,
            "executors": args.executors,
            "time_scale": scale,
            "min_wall_seconds_for_long": args.min_wall,
            "eta_error_percent": results,
            "submit_latency": latency,
        },
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
