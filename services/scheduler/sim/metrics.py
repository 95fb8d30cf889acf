"""Metrics of a simulation (DESIGN.md, Scheduling): JCT, prediction error, unfairness."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .driver import SimulationResult

__all__ = ["Summary", "fair_jct", "prediction_error", "summarize", "unfairness", "write_jobs_csv"]


def prediction_error(result: SimulationResult) -> np.ndarray:
    """``100 |predicted JCT - actual JCT| / predicted JCT`` per job (nan without prediction)."""
    predicted_jct = result.predicted - result.arrival
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * np.abs(predicted_jct - result.jct) / predicted_jct


def fair_jct(result: SimulationResult) -> np.ndarray:
    """``size / min(capacity / average active jobs, demand)``: the JCT of an equal share."""
    return result.size / np.minimum(result.gpus / result.contention, result.demand)


def unfairness(result: SimulationResult) -> np.ndarray:
    """``rho = 100 max(0, JCT / fair JCT - 1)`` per job."""
    return 100.0 * np.maximum(0.0, result.jct / fair_jct(result) - 1.0)


@dataclass(frozen=True, slots=True)
class Summary:
    """One row of a comparison table."""

    policy: str
    jobs: int
    jct_mean: float
    jct_p50: float
    jct_p95: float
    jct_p99: float
    error_mean: float
    error_p99: float
    #: share of jobs with a prediction
    predicted_share: float
    unfairness_mean: float
    unfairness_p99: float
    #: share of jobs that finished later than their fair JCT (rho > 0)
    unfair_share: float
    events: int
    wall_seconds: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _pct(values: np.ndarray, q: float) -> float:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def summarize(result: SimulationResult, label: str | None = None) -> Summary:
    jct = result.jct
    error = prediction_error(result)
    rho = unfairness(result)
    return Summary(
        policy=label or result.policy,
        jobs=len(jct),
        jct_mean=_mean(jct),
        jct_p50=_pct(jct, 50),
        jct_p95=_pct(jct, 95),
        jct_p99=_pct(jct, 99),
        error_mean=_mean(error),
        error_p99=_pct(error, 99),
        predicted_share=float(np.mean(~np.isnan(error))) if len(error) else 0.0,
        unfairness_mean=_mean(rho),
        unfairness_p99=_pct(rho, 99),
        unfair_share=float(np.mean(rho > 1e-9)) if len(rho) else 0.0,
        events=result.events,
        wall_seconds=result.wall_seconds,
    )


def write_jobs_csv(result: SimulationResult, path: Path) -> None:
    """Per-job outcomes, one row per job."""
    error = prediction_error(result)
    fair = fair_jct(result)
    rho = unfairness(result)
    columns: Sequence[tuple[str, np.ndarray]] = (
        ("job_id", result.job_id),
        ("arrival", result.arrival),
        ("size", result.size),
        ("demand", result.demand),
        ("predicted_completion", result.predicted),
        ("completion", result.completion),
        ("jct", result.jct),
        ("prediction_error_pct", error),
        ("fair_jct", fair),
        ("unfairness_pct", rho),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([name for name, _ in columns])
        for row in zip(*(values.tolist() for _, values in columns), strict=True):
            writer.writerow(row)
