"""Workloads a search optimises for: a trace file, a synthetic workload drawn from CDFs, or a
snapshot of recent jobs (the scheduler's history), as one serialisable spec.

The spec, not the jobs, travels to worker processes and optimizer replicas; each loads the
jobs once and keeps them (:func:`load_jobs` is cached per spec).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmproxy.scheduler.core import Job
from llmproxy.scheduler.sim import DEFAULT_DATA_DIR, EmpiricalCdf, read_trace, synthetic_jobs
from llmproxy.scheduler.sim import trace_path as sim_trace_path

__all__ = ["KINDS", "WorkloadError", "WorkloadSpec", "load_jobs"]

KINDS = ("trace", "synthetic", "history")
#: bounds that keep a search on this machine sane
MAX_JOBS = 100_000


class WorkloadError(ValueError):
    """The workload cannot be built; the message names the input at fault."""


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """What to simulate. Only the fields of ``kind`` matter."""

    kind: str
    #: trace: an id (``0e4a51``), a file name or a path; synthetic: ``service=..,interarrival=..``
    source: str = ""
    #: the first ``limit`` jobs only (trace, history); the job count (synthetic)
    limit: int | None = None
    gpus: int = 64
    seed: int = 0
    #: share of jobs that get a prediction (the artifact: min(5000 / jobs, 1))
    prediction_share: float | None = None
    #: history: the jobs themselves, as (arrival, size, demand) rows
    rows: tuple[tuple[float, float, float], ...] = field(default=(), repr=False)
    data_dir: str = str(DEFAULT_DATA_DIR)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise WorkloadError(f"workload kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 1 <= self.gpus <= 100_000:
            raise WorkloadError(f"cluster gpus must be in 1..100000, got {self.gpus}")
        if self.limit is not None and not 1 <= self.limit <= MAX_JOBS:
            raise WorkloadError(f"jobs limit must be in 1..{MAX_JOBS}, got {self.limit}")
        share = self.prediction_share
        if share is not None and not 0 < share <= 1:
            raise WorkloadError(f"prediction share must be in (0, 1], got {share}")
        if self.kind == "trace" and not self.trace_file().exists():
            known = sorted(
                p.stem.removeprefix("trace_")
                for p in (Path(self.data_dir) / "traces").glob("*.csv")
            )
            raise WorkloadError(
                f"unknown trace {self.source!r} (no file {self.trace_file()}); "
                f"known: {', '.join(known) or 'none'}"
            )
        if self.kind == "synthetic":
            self._synthetic_parts()
        if self.kind == "history" and not self.rows:
            raise WorkloadError("the job history is empty: nothing to optimise for")

    def trace_file(self) -> Path:
        return sim_trace_path(self.source, Path(self.data_dir))

    def _synthetic_parts(self) -> tuple[Path, Path, int]:
        parts: dict[str, str] = {}
        for item in self.source.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise WorkloadError(f"synthetic spec item {item!r} is not key=value")
            parts[key.strip()] = value.strip()
        unknown = set(parts) - {"service", "interarrival", "jobs"}
        if unknown:
            raise WorkloadError(
                f"synthetic spec keys {sorted(unknown)} unknown; use service, interarrival, jobs"
            )
        folder = Path(self.data_dir) / "workloads"
        service = parts.get("service", "philly")
        arrivals = parts.get("interarrival", "0e4a51")
        sizes = _first_existing(
            folder,
            [
                f"cdf-app-service-times-{service}.csv",
                f"cdf-app-service-times-workload_{service}.csv",
            ],
            "service",
        )
        gaps = _first_existing(
            folder, [f"cdf-app-interarrival-times-workload_{arrivals}.csv"], "interarrival"
        )
        try:
            count = int(parts.get("jobs", self.limit or 1000))
        except ValueError as exc:
            raise WorkloadError(f"synthetic jobs must be an integer: {parts['jobs']!r}") from exc
        if not 1 <= count <= MAX_JOBS:
            raise WorkloadError(f"synthetic jobs must be in 1..{MAX_JOBS}, got {count}")
        return sizes, gaps, count

    @property
    def key(self) -> str:
        """Identity of the simulated workload: evaluations are shared under it."""
        data = self.to_mapping()
        data.pop("data_dir")
        if self.kind == "trace":
            data["source"] = self.trace_file().name
            data["file_bytes"] = self.trace_file().stat().st_size
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_mapping(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["rows"] = [list(r) for r in self.rows]
        return data

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> WorkloadSpec:
        values = dict(data)
        values["rows"] = tuple(tuple(float(v) for v in r) for r in values.get("rows", ()))
        values.pop("file_bytes", None)
        return cls(**values)

    def describe(self) -> str:
        if self.kind == "trace":
            jobs = "all jobs" if self.limit is None else f"first {self.limit} jobs"
            return f"trace {self.source} ({jobs}, {self.gpus} GPUs)"
        if self.kind == "synthetic":
            return f"synthetic {self.source} ({self.gpus} GPUs, seed {self.seed})"
        return f"history ({len(self.rows)} jobs, {self.gpus} GPUs)"


def _first_existing(folder: Path, names: Sequence[str], what: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise WorkloadError(f"no {what} CDF {' or '.join(names)} in {folder}")


@functools.lru_cache(maxsize=8)
def load_jobs(spec: WorkloadSpec) -> tuple[Job, ...]:
    """The jobs of ``spec`` in arrival order (cached: a worker loads each workload once)."""
    if spec.kind == "trace":
        jobs = read_trace(spec.trace_file(), spec.limit)
    elif spec.kind == "synthetic":
        sizes, gaps, count = spec._synthetic_parts()
        rng = np.random.default_rng(spec.seed)
        jobs = synthetic_jobs(EmpiricalCdf.read(sizes), EmpiricalCdf.read(gaps), count, rng)
    else:
        rows = spec.rows[: spec.limit] if spec.limit else spec.rows
        jobs = [
            Job(job_id=i, arrival=a, size=s, demand=d) for i, (a, s, d) in enumerate(sorted(rows))
        ]
    if not jobs:
        raise WorkloadError(f"{spec.describe()} has no jobs")
    return tuple(jobs)
