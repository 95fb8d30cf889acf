"""Scoring one candidate: a full simulation of the workload with a prediction per job.

Synchronous and picklable (module-level functions on plain data), so a process pool or an
optimizer replica can run it; the simulator is the scheduler's (``llmproxy.scheduler.sim``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

from llmproxy.scheduler.core import ClusterConfig, make_policy
from llmproxy.scheduler.sim import simulate, summarize

from .space import Candidate
from .workload import WorkloadSpec, load_jobs

__all__ = ["FAILED", "METRICS", "evaluate_candidate", "evaluate_mapping", "failed_metrics"]

#: what every evaluation records (``Summary`` fields)
METRICS = (
    "jct_mean",
    "jct_p50",
    "jct_p99",
    "error_mean",
    "error_p99",
    "unfairness_mean",
    "unfairness_p99",
    "predicted_share",
)
#: set to 1.0 in the metrics of a configuration whose evaluation kept failing
FAILED = "failed"


def evaluate_candidate(spec: WorkloadSpec, candidate: Candidate) -> dict[str, float]:
    """Metrics of one full simulation of ``spec``'s jobs under ``candidate``.

    The per-job GPU cap clips every job's demand before it is submitted, as the live
    scheduler does with the applied configuration's ``max_job_gpus``."""
    started = time.perf_counter()
    jobs = load_jobs(spec)
    cap = candidate.max_job_gpus
    if cap is not None:
        jobs = tuple(
            dataclasses.replace(j, demand=min(j.demand, float(cap))) if j.demand > cap else j
            for j in jobs
        )
    share = spec.prediction_share
    if share is None:
        share = min(5000 / len(jobs), 1.0)
    result = simulate(
        jobs,
        ClusterConfig(gpus=spec.gpus),
        make_policy("wfq", config=candidate.config),
        predict=True,
        prediction_share=share,
        seed=spec.seed,
    )
    summary = summarize(result)
    metrics = {name: float(getattr(summary, name)) for name in METRICS}
    metrics["wall_seconds"] = time.perf_counter() - started
    return {k: (v if math.isfinite(v) else float("nan")) for k, v in metrics.items()}


def evaluate_mapping(
    spec_data: Mapping[str, Any], candidate_data: Mapping[str, Any]
) -> dict[str, float]:
    """:func:`evaluate_candidate` on serialised inputs (what a pool worker receives)."""
    return evaluate_candidate(
        WorkloadSpec.from_mapping(spec_data), Candidate.from_mapping(candidate_data)
    )


def failed_metrics(attempts: int) -> dict[str, float]:
    """What is stored for a configuration whose simulation failed ``attempts`` times: every
    metric NaN, which the search reads as the worst value of every objective (NSGA-II ranks
    it last) and which keeps it off every front and preset."""
    metrics = {name: float("nan") for name in METRICS}
    metrics.update({FAILED: 1.0, "attempts": float(attempts), "wall_seconds": 0.0})
    return metrics
