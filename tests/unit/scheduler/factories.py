"""Plain factory helpers for the scheduler tests."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from llmproxy.scheduler.core import ActiveJobs, ClusterConfig, Job, WfqConfig, make_policy
from llmproxy.scheduler.sim import DEFAULT_DATA_DIR, SimulationResult, simulate

DATA_DIR: Path = DEFAULT_DATA_DIR


def active_jobs(
    demand: Sequence[object],
    *,
    remaining: Sequence[object] | None = None,
    job_class: Sequence[int] | None = None,
    attained: Sequence[object] | None = None,
    now: object = 0,
) -> ActiveJobs:
    """Columns for a policy; Fractions in, Fractions out (object arrays)."""
    exact = any(isinstance(d, Fraction) for d in demand)
    dtype = object if exact else float
    n = len(demand)
    rem = np.array(remaining if remaining is not None else [10] * n, dtype=dtype)
    return ActiveJobs(
        now=now,  # type: ignore[arg-type]
        arrival=np.zeros(n, dtype=dtype),
        size=rem.copy(),
        remaining=rem,
        demand=np.array(demand, dtype=dtype),
        job_class=np.array(job_class if job_class is not None else [0] * n, dtype=np.int64),
        attained=np.array(attained if attained is not None else [0] * n, dtype=dtype),
        contention=np.ones(n, dtype=float),
    )


def two_class_wfq(threshold: float = 10, low: Fraction = Fraction(3, 4)) -> WfqConfig:
    return WfqConfig(thresholds=(threshold, float("inf")), weights=(low, 1 - low))


def jobs_from(rows: Sequence[tuple[float, float, float]]) -> list[Job]:
    """(arrival, size, demand) rows -> jobs with ids in order."""
    return [Job(i, float(a), float(s), float(d)) for i, (a, s, d) in enumerate(rows)]


def random_jobs(rng: np.random.Generator, count: int, max_demand: int = 8) -> list[Job]:
    gaps = rng.exponential(200.0, size=count)
    arrival = np.cumsum(gaps) - gaps[0]
    size = np.exp(rng.uniform(np.log(10), np.log(50_000), size=count))
    demand = rng.integers(1, max_demand + 1, size=count)
    return [
        Job(i, float(a), float(s), float(d))
        for i, (a, s, d) in enumerate(zip(arrival, size, demand, strict=True))
    ]


def run(
    jobs: Sequence[Job], policy: str = "fifo", gpus: float = 8, **params: object
) -> SimulationResult:
    return simulate(jobs, ClusterConfig(gpus=gpus), make_policy(policy, **params))
