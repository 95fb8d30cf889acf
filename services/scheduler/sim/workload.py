"""Workloads for the simulator: Philly traces as prepared by the PCS authors, synthetic jobs
drawn from empirical CDFs, and job-size estimation error injection. All randomness comes from
a seeded :class:`numpy.random.Generator` passed in."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core import ConfigError, Job

__all__ = [
    "DEFAULT_DATA_DIR",
    "EmpiricalCdf",
    "inject_size_error",
    "read_trace",
    "synthetic_jobs",
    "trace_path",
]

#: ``../shared/data/pcs`` relative to the repository root
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "pcs"


def trace_path(trace: str, data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    """Path of a trace given its virtual-cluster id (``0e4a51``), its file name, or a path."""
    candidate = Path(trace)
    if candidate.suffix == ".csv" and candidate.exists():
        return candidate
    name = trace.removeprefix("trace_").removesuffix(".csv")
    return data_dir / "traces" / f"trace_{name}.csv"


def read_trace(path: Path, limit: int | None = None) -> list[Job]:
    """Jobs of a PCS trace CSV (``app_id,submit_time,service,num_jobs,sleep_time,model_name``).

    As the artifact reads them: the size is ``service`` (GPU-seconds), the demand is
    ``num_jobs`` GPUs, submit times are the running sum of ``sleep_time``.
    """
    jobs: list[Job] = []
    clock = 0.0
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if limit is not None and len(jobs) >= limit:
                break
            clock += float(row["sleep_time"])
            features = {"model_name": row["model_name"]} if row.get("model_name") else {}
            jobs.append(
                Job(
                    job_id=int(row["app_id"]),
                    arrival=clock,
                    size=float(row["service"]),
                    demand=float(row["num_jobs"]),
                    features=features,
                )
            )
    return jobs


@dataclasses.dataclass(frozen=True, slots=True)
class EmpiricalCdf:
    """An empirical CDF (one value and its cumulative probability a row), sampled by inverse
    transform with linear interpolation."""

    values: np.ndarray
    probabilities: np.ndarray

    @classmethod
    def read(cls, path: Path) -> EmpiricalCdf:
        """Read a CDF file; a ``#minutes`` header scales values to seconds.

        Some shipped files (``cdf-app-service-times-workload_*.csv``) have probabilities that
        dip between rows; rows are taken in value order and the probability as its running
        maximum, the nearest valid CDF."""
        with path.open() as handle:
            header = handle.readline().strip().lstrip("#").split(",")
            rows = [line.split(",") for line in handle if line.strip()]
        scale = 60.0 if header and header[0].strip().lower().startswith("min") else 1.0
        values = np.array([float(r[0]) for r in rows]) * scale
        probabilities = np.array([float(r[1]) for r in rows])
        if len(values) < 2:
            raise ConfigError(str(path), "a CDF needs at least 2 rows")
        order = np.argsort(values, kind="stable")
        values = values[order]
        probabilities = np.maximum.accumulate(probabilities[order])
        return cls(values, probabilities)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        u = rng.uniform(self.probabilities[0], self.probabilities[-1], size=count)
        return np.interp(u, self.probabilities, self.values)


def synthetic_jobs(
    sizes: EmpiricalCdf,
    interarrivals: EmpiricalCdf,
    count: int,
    rng: np.random.Generator,
    demand: float = 1.0,
) -> list[Job]:
    """``count`` jobs with sizes and inter-arrival gaps drawn from the CDFs (sizes >= 1 s)."""
    size = np.maximum(sizes.sample(count, rng), 1.0)
    arrival = np.cumsum(interarrivals.sample(count, rng))
    arrival -= arrival[0]
    return [
        Job(job_id=i, arrival=float(a), size=float(s), demand=demand)
        for i, (a, s) in enumerate(zip(arrival.tolist(), size.tolist(), strict=True))
    ]


def inject_size_error(jobs: Sequence[Job], percent: float, rng: np.random.Generator) -> list[Job]:
    """Each job's estimated size = size x (1 + u), u uniform in ±percent/100 (as the artifact's
    ``p_error``), floored at 0.01 GPU-seconds. ``percent == 0`` returns exact estimates."""
    if percent < 0:
        raise ConfigError("size_error", f"must be >= 0, got {percent!r}")
    if percent == 0:
        return [dataclasses.replace(j, estimated_size=None) for j in jobs]
    factors = 1.0 + rng.uniform(-percent / 100.0, percent / 100.0, size=len(jobs))
    return [
        dataclasses.replace(j, estimated_size=max(j.size * f, 1e-2))
        for j, f in zip(jobs, factors.tolist(), strict=True)
    ]
