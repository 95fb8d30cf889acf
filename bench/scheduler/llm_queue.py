"""LLM request queue: a capacity-limited backend of 4 slots, bursts of requests from 3 tenants
with different weights. Reports the ETA error of answered requests (mean, p95) and each
tenant's share of service while all three were backlogged, against its weight.

    .venv/bin/python bench/scheduler/llm_queue.py            # 240 requests, about 25 s
    .venv/bin/python bench/scheduler/llm_queue.py --smoke    # 36 requests, a few seconds

The product's path end to end except HTTP: the gateway's ``RequestQueues`` (sizing each
request from the catalog's prior, one WFQ flow per tenant weighted by the gateway's tenant
weights, the ETA given at admission) over gRPC to the real scheduler engine and servicer on
SQLite, its executor agent holding the backend's slots. The "model" takes, for each request,
its predicted time x a log-normal factor (sigma ``--noise``): real answers are not as long or
as fast as predicted. Each request: admit (ETA) -> wait its turn -> answer -> release.

ETA error is the PCS metric on the request's completion time from admission:
``100 |predicted - actual| / predicted``, with the prediction given at admission (later
arrivals of tenants with earlier WFQ tags can overtake a request: that is part of the error).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "pcs"))
sys.path.insert(0, str(ROOT / "bench" / "scheduler"))

from _common import machine, result_path, write_result  # noqa: E402
from live_eta import ENVIRONMENT, LiveService  # noqa: E402

from llmproxy.gateway.catalog import Catalog, ModelSpec, Price  # noqa: E402
from llmproxy.gateway.queueing import RequestQueues  # noqa: E402
from llmproxy.scheduler.core import WfqConfig  # noqa: E402

MODEL = "local-4slot"
SLOTS = 4


@dataclass
class Record:
    tenant: str
    admitted: float
    predicted_completion: float
    #: predicted service time (the job's size)
    size: float = 0.0
    started: float = 0.0
    completed: float = 0.0


def catalog(tokens_per_s: float) -> Catalog:
    spec = ModelSpec(
        name=MODEL,
        provider="openai-compatible",
        provider_model=MODEL,
        price=Price(Decimal(0), Decimal(0), Decimal(0)),
        context_window=8192,
        capacity_slots=SLOTS,
        first_token_ms=20.0,
        output_tokens_per_s=tokens_per_s,
    )
    return Catalog(models={MODEL: spec}, default_model=MODEL, reference_model=MODEL)


async def one_request(
    queues: RequestQueues,
    spec: ModelSpec,
    tenant: str,
    tokens: int,
    noise: float,
    rng: random.Random,
    records: list[Record],
) -> None:
    accepted = datetime.now(UTC)
    admission = await queues.admit(
        spec,
        tenant=tenant,
        request_id="",
        output_tokens=tokens,
        profile=None,
        accepted_at=accepted,
    )
    assert admission is not None, "the queue must be up"
    predicted = admission.ticket.predicted_completion
    assert predicted is not None
    record = Record(
        tenant, accepted.timestamp(), predicted.timestamp(), admission.ticket.size_seconds
    )
    await queues.wait_turn(admission)
    record.started = time.time()
    service = admission.ticket.size_seconds * rng.lognormvariate(0.0, noise)
    await asyncio.sleep(service)
    await queues.done(admission, failed=False)
    record.completed = time.time()
    records.append(record)


async def run(
    bursts: list[tuple[float, str, int]],
    weights: dict[str, float],
    tokens_per_s: float,
    noise: float,
    seed: int,
) -> list[Record]:
    rng = random.Random(seed)
    models = catalog(tokens_per_s)
    spec = models.models[MODEL]
    with tempfile.TemporaryDirectory() as tmp:
        async with LiveService(Path(tmp), 1.0, WfqConfig.single_class()) as service:
            queues = RequestQueues(service.address, models, replica="bench", tenant_weights=weights)
            await queues.start()
            while not queues.ready(MODEL):  # noqa: ASYNC110 - registration runs in a task
                await asyncio.sleep(0.05)
            records: list[Record] = []
            began = time.monotonic()
            tasks = []
            for at, tenant, count in sorted(bursts):
                await asyncio.sleep(max(began + at - time.monotonic(), 0.0))
                for _ in range(count):
                    tokens = rng.randint(32, 256)
                    tasks.append(
                        asyncio.create_task(
                            one_request(queues, spec, tenant, tokens, noise, rng, records)
                        )
                    )
            await asyncio.gather(*tasks)
            await queues.close()
    return records


def _summary(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    percent = 100 * np.abs(predicted - actual) / predicted
    seconds = np.abs(predicted - actual)
    return {
        "requests": len(predicted),
        "mean_percent": float(percent.mean()),
        "p50_percent": float(np.percentile(percent, 50)),
        "p95_percent": float(np.percentile(percent, 95)),
        "mean_seconds": float(seconds.mean()),
        "p95_seconds": float(np.percentile(seconds, 95)),
    }


def eta_errors(records: list[Record]) -> dict[str, Any]:
    """The ETA given at admission against the actual completion (all requests, and per
    tenant); and, apart, the service-time part alone (predicted size against the time from
    the grant to the answer), which no later arrival can disturb."""

    def at_admission(rows: list[Record]) -> dict[str, float]:
        return _summary(
            np.array([r.predicted_completion - r.admitted for r in rows]),
            np.array([r.completed - r.admitted for r in rows]),
        )

    result: dict[str, Any] = at_admission(records)
    result["by_tenant"] = {
        t: at_admission([r for r in records if r.tenant == t])
        for t in sorted({r.tenant for r in records})
    }
    result["service_time_only"] = _summary(
        np.array([r.size for r in records]), np.array([r.completed - r.started for r in records])
    )
    return result


def shares(records: list[Record], weights: dict[str, float]) -> dict[str, Any]:
    """Each tenant's share of slot-seconds while every tenant had requests waiting (from the
    last tenant's first arrival to the first tenant's last start), against its weight."""
    tenants = sorted(weights)
    begin = max(min(r.admitted for r in records if r.tenant == t) for t in tenants)
    end = min(max(r.started for r in records if r.tenant == t) for t in tenants)
    served = dict.fromkeys(tenants, 0.0)
    for r in records:
        served[r.tenant] += max(0.0, min(r.completed, end) - max(r.started, begin))
    total = sum(served.values()) or 1.0
    weight_total = sum(weights.values())
    return {
        "window_seconds": max(0.0, end - begin),
        "tenants": {
            t: {
                "weight": weights[t],
                "expected_share": weights[t] / weight_total,
                "share": served[t] / total,
                "share_over_expected": (served[t] / total) / (weights[t] / weight_total),
            }
            for t in tenants
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="36 requests; for CI")
    parser.add_argument("--scale", type=int, default=4, help="requests per burst unit")
    parser.add_argument("--tokens-per-s", type=float, default=800.0, help="model speed prior")
    parser.add_argument("--noise", type=float, default=0.25, help="sigma of the actual/predicted")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--out", help="result JSON (default bench/results/scheduler_llm_queue.json)"
    )
    args = parser.parse_args(argv)
    unit = 1 if args.smoke else args.scale
    weights = {"acme": 1.0, "globex": 1.0, "initech": 2.0}
    # acme bursts twice; globex and initech once each, a little later
    bursts = [
        (0.0, "acme", 15 * unit),
        (0.3, "globex", 15 * unit),
        (0.6, "initech", 15 * unit),
        (1.5, "acme", 15 * unit),
    ]
    if args.smoke:
        bursts = [(0.0, "acme", 12), (0.1, "globex", 8), (0.2, "initech", 8), (0.5, "acme", 8)]
    load_before = os.getloadavg()
    records = asyncio.run(run(bursts, weights, args.tokens_per_s, args.noise, args.seed))
    load_after = os.getloadavg()
    errors = eta_errors(records)
    fairness = shares(records, weights)
    print(
        f"{len(records)} requests, {SLOTS} slots, tenants {weights}, noise sigma {args.noise}; "
        f"load average {[round(x, 2) for x in load_before]}"
    )
    print(
        f"ETA error: mean {errors['mean_percent']:.1f} %, p95 {errors['p95_percent']:.1f} % "
        f"(mean {errors['mean_seconds']:.2f} s, p95 {errors['p95_seconds']:.2f} s)"
    )
    for tenant, row in errors["by_tenant"].items():
        print(f"  {tenant:<8} mean {row['mean_percent']:.1f} %, p95 {row['p95_percent']:.1f} %")
    service = errors["service_time_only"]
    print(
        f"  service time alone (grant to answer): mean {service['mean_percent']:.1f} %, "
        f"p95 {service['p95_percent']:.1f} %"
    )
    print(f"all backlogged for {fairness['window_seconds']:.1f} s:")
    print(f"{'tenant':<10} {'weight':>6} {'expected':>9} {'share':>7} {'ratio':>6}")
    for tenant, row in fairness["tenants"].items():
        print(
            f"{tenant:<10} {row['weight']:>6g} {row['expected_share']:>9.2f} "
            f"{row['share']:>7.2f} {row['share_over_expected']:>6.2f}"
        )
    out = result_path(
        "scheduler_llm_queue_smoke" if args.smoke else "scheduler_llm_queue", args.out
    )
    write_result(
        out,
        {
            "command": " ".join(
                ["python", "bench/scheduler/llm_queue.py", *(argv or sys.argv[1:])]
            ),
            "environment": ENVIRONMENT,
            "machine": machine(),
            "slots": SLOTS,
            "weights": weights,
            "bursts": [{"at_seconds": a, "tenant": t, "requests": n} for a, t, n in bursts],
            "noise_sigma": args.noise,
            "eta_error": errors,
            "fair_share": fairness,
            "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
            "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
        },
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
