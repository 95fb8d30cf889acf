"""Domain records of the PCS scheduling core: jobs, cluster and WFQ configuration, allocations.

Units: times in seconds since an arbitrary origin, sizes in GPU-seconds (the work of a job at
linear scaling), allocations in GPUs (fractional in the fluid model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

__all__ = [
    "Allocation",
    "ClusterConfig",
    "ConfigError",
    "Job",
    "SchedulerError",
    "UnknownJobError",
    "WfqConfig",
]


class SchedulerError(Exception):
    """Root of every error raised by the scheduling core."""


class ConfigError(SchedulerError, ValueError):
    """A configuration value is out of its domain; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownJobError(SchedulerError, KeyError):
    """A call named a job the cluster does not hold (never submitted, or already finished)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"unknown job {job_id}")
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class Job:
    """One job (the artifact's "app") as submitted to the scheduler."""

    #: unique id; ids are also the FIFO tie-break, so give them in submission order
    job_id: int
    #: submission time, seconds
    arrival: float
    #: true total work, GPU-seconds at linear scaling (the simulator's ground truth)
    size: float
    #: the most GPUs the job can use (its demand cap), > 0
    demand: float
    #: the size the scheduler believes (error injection, or a profiler's estimate); None = exact
    estimated_size: float | None = None
    #: free-form features (model name, user); carried, never interpreted by the core
    features: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.size > 0 or not math.isfinite(self.size):
            raise ConfigError("size", f"must be finite and > 0, got {self.size!r}")
        if not self.demand > 0:
            raise ConfigError("demand", f"must be > 0, got {self.demand!r}")
        if self.estimated_size is not None and not self.estimated_size > 0:
            raise ConfigError("estimated_size", f"must be > 0, got {self.estimated_size!r}")

    @property
    def believed_size(self) -> float:
        """The size every scheduling decision and prediction uses."""
        return self.size if self.estimated_size is None else self.estimated_size


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The cluster the core schedules."""

    #: number of GPUs (capacity), > 0
    gpus: float = 64
    #: False: fluid model (fractional GPUs, as in the published evaluation);
    #: True: every allocation is rounded to whole GPUs (largest remainders first)
    whole_gpus: bool = False

    def __post_init__(self) -> None:
        if not self.gpus > 0:
            raise ConfigError("gpus", f"must be > 0, got {self.gpus!r}")


@dataclass(frozen=True, slots=True)
class Allocation:
    """GPUs given to one job from one decision until the next."""

    job_id: int
    gpus: float


def _parse_threshold(value: Any) -> float:
    if isinstance(value, str) and value.strip().lower() in {"inf", "infinity"}:
        return math.inf
    return float(value)


def _parse_weight(value: Any) -> Fraction:
    if isinstance(value, Mapping):
        value = value.get("fraction", value.get("float"))
    if isinstance(value, float):
        return Fraction(value).limit_denominator(10**9)
    return Fraction(value)


@dataclass(frozen=True, slots=True)
class WfqConfig:
    """A WFQ-PCS class configuration (one point of the PCS search space)."""

    #: upper size bound of each class in single-GPU seconds, ascending; the last is +inf
    thresholds: tuple[float, ...]
    #: class weights (exact fractions, sum 1): a class's share of the cluster
    weights: tuple[Fraction, ...]
    #: the artifact's GPU-clipping knobs; inert under linear scaling (every GPU is efficient)
    clip_demand_factor: float = 0.01
    delta: float = 0.1

    def __post_init__(self) -> None:
        if not self.thresholds:
            raise ConfigError("thresholds", "at least one class is needed")
        if len(self.thresholds) != len(self.weights):
            raise ConfigError(
                "weights", f"{len(self.weights)} weights for {len(self.thresholds)} classes"
            )
        if any(b <= a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)):
            raise ConfigError("thresholds", f"must be strictly ascending: {self.thresholds}")
        if self.thresholds[-1] != math.inf:
            raise ConfigError("thresholds", "the last class must be unbounded (inf)")
        if any(w <= 0 for w in self.weights):
            raise ConfigError("weights", f"must all be > 0: {self.weights}")
        if abs(float(sum(self.weights)) - 1.0) > 1e-6:
            raise ConfigError("weights", f"must sum to 1, sum is {float(sum(self.weights))}")

    @property
    def num_classes(self) -> int:
        return len(self.thresholds)

    @classmethod
    def single_class(cls) -> WfqConfig:
        """One class with all the cluster: WFQ degenerates to FIFO with demand caps."""
        return cls(thresholds=(math.inf,), weights=(Fraction(1),))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> WfqConfig:
        """Read a configuration from the artifact's keys (``class_thresholds``, ``class_rates``)
        or ours (``thresholds``, ``weights``); weights may be fractions as text, floats, or
        ``{"fraction": ..., "float": ...}`` objects as in paper_configs.json."""
        raw_thresholds: Sequence[Any] = data.get("thresholds", data.get("class_thresholds", ()))
        raw_weights: Sequence[Any] = data.get("weights", data.get("class_rates", ()))
        clip = data.get("clip_demand_factor")
        delta = data.get("delta")
        return cls(
            thresholds=tuple(_parse_threshold(t) for t in raw_thresholds),
            weights=tuple(_parse_weight(w) for w in raw_weights),
            clip_demand_factor=0.01 if clip is None else float(clip),
            delta=0.1 if delta is None else float(delta),
        )

    def to_mapping(self) -> dict[str, Any]:
        return {
            "thresholds": ["inf" if math.isinf(t) else t for t in self.thresholds],
            "weights": [str(w) for w in self.weights],
            "clip_demand_factor": self.clip_demand_factor,
            "delta": self.delta,
        }

    def class_of(self, estimated_size: float) -> int:
        """First class whose threshold is >= the estimated size."""
        for index, bound in enumerate(self.thresholds):
            if estimated_size <= bound:
                return index
        return len(self.thresholds) - 1
