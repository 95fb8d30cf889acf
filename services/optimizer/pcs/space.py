"""The PCS search space: WFQ class configurations plus a per-job GPU cap, and the two ways a
search vector in the unit cube becomes one.

* **full**: every knob is a coordinate: the number of classes (1-6), five boundary steps (in
  log size), six class weights and the per-job GPU cap. 13 dimensions.
* **compact** (the default): 5 coordinates. Boundaries are cut where the spread of the sorted
  job sizes inside a class (largest / smallest) would exceed a ratio; weights decay
  geometrically by class; plus the class count and the GPU cap. The shape matches what the
  PCS authors' searches found (a few classes, small jobs weighted ~20x above the next), so
  NSGA-II converges in a few hundred evaluations.

Every decoded configuration is put in a canonical form (boundaries to 3 significant digits,
weights to thousandths that sum to exactly 1) and hashed: equal configurations share a hash,
which is how evaluations are stored, shared and never re-run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from llmproxy.scheduler.core import WfqConfig

__all__ = [
    "MAX_CLASSES",
    "SPACES",
    "Candidate",
    "SearchSpace",
    "canonical_candidate",
]

MAX_CLASSES = 6
#: weights are held in thousandths, at least one each
_WEIGHT_UNITS = 1000
#: the knobs of every space and their meaning, for error messages
SPACES = ("compact", "full")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One point of the search space: a WFQ configuration and a per-job GPU cap."""

    config: WfqConfig
    #: no job runs on more GPUs than this (its demand is clipped); None: no cap
    max_job_gpus: int | None = None

    @property
    def config_hash(self) -> str:
        """Stable id of the canonical form (sha256 of its JSON, 16 hex digits)."""
        text = json.dumps(self.to_mapping(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_mapping(self) -> dict[str, Any]:
        data = self.config.to_mapping()
        data["max_job_gpus"] = self.max_job_gpus
        return data

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Candidate:
        cap = data.get("max_job_gpus")
        return cls(WfqConfig.from_mapping(data), None if cap is None else int(cap))

    def describe(self) -> str:
        bounds = ", ".join("inf" if math.isinf(t) else f"{t:,.0f}" for t in self.config.thresholds)
        weights = ", ".join(f"{float(w):.3f}" for w in self.config.weights)
        cap = "none" if self.max_job_gpus is None else str(self.max_job_gpus)
        return f"{self.config.num_classes} classes [{bounds}] weights [{weights}] cap {cap}"


def _round_sig(value: float, digits: int = 3) -> float:
    if value <= 0 or math.isinf(value):
        return value
    return float(f"{value:.{digits}g}")


def _weight_fractions(raw: Sequence[float]) -> tuple[Fraction, ...]:
    """Positive weights as thousandths (each >= 1) summing to exactly 1."""
    total = float(sum(raw))
    units = [max(1, round(_WEIGHT_UNITS * w / total)) for w in raw]
    units[int(np.argmax(units))] += _WEIGHT_UNITS - sum(units)
    return tuple(Fraction(u, _WEIGHT_UNITS) for u in units)


def canonical_candidate(
    thresholds: Sequence[float], weights: Sequence[float], max_job_gpus: int | None
) -> Candidate:
    """The canonical candidate for raw boundaries (the last may be omitted or inf) and raw
    positive weights (any scale); classes that rounding makes coincide are merged."""
    finite = [t for t in thresholds if not math.isinf(t)]
    if len(weights) != len(finite) + 1:
        raise ValueError(f"{len(weights)} weights for {len(finite) + 1} classes")
    if any(not w > 0 for w in weights):
        raise ValueError(f"weights must all be > 0: {list(weights)}")
    bounds: list[float] = []
    merged: list[float] = []
    for bound, weight in zip(finite, weights, strict=False):
        rounded = max(1.0, _round_sig(bound))
        if bounds and rounded <= bounds[-1]:
            merged[-1] += weight
            continue
        bounds.append(rounded)
        merged.append(weight)
    merged.append(float(weights[-1]))
    bounds.append(math.inf)
    config = WfqConfig(thresholds=tuple(bounds), weights=_weight_fractions(merged))
    return Candidate(config, max_job_gpus)


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Decodes unit-cube vectors into candidates for one workload.

    ``sizes`` are the jobs' believed sizes (single-GPU seconds); boundaries are placed among
    them. ``gpus`` is the cluster size (the GPU cap's upper end)."""

    kind: str
    sizes: np.ndarray
    gpus: int

    @classmethod
    def build(cls, kind: str, sizes: Sequence[float], gpus: int) -> SearchSpace:
        if kind not in SPACES:
            raise ValueError(f"space {kind!r} is not one of {', '.join(SPACES)}")
        if gpus < 1:
            raise ValueError(f"gpus must be >= 1, got {gpus}")
        ordered = np.sort(np.asarray(sizes, dtype=float))
        if len(ordered) == 0:
            raise ValueError("the workload has no jobs")
        return cls(kind, ordered, gpus)

    @property
    def dimensions(self) -> int:
        return 5 if self.kind == "compact" else 1 + (MAX_CLASSES - 1) + MAX_CLASSES + 1

    def decode(self, x: Sequence[float]) -> Candidate:
        v = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
        if len(v) != self.dimensions:
            raise ValueError(f"{self.kind} space takes {self.dimensions} values, got {len(v)}")
        classes = min(MAX_CLASSES, 1 + int(v[0] * MAX_CLASSES))
        cap = self._gpu_cap(v[-1])
        if self.kind == "compact":
            return self._decode_compact(classes, v[1], v[2], v[3], cap)
        return self._decode_full(classes, v[1:MAX_CLASSES], v[MAX_CLASSES:-1], cap)

    def _gpu_cap(self, u: float) -> int | None:
        """u in the top tenth: no cap; else 2^(u' * log2 gpus), 1 .. gpus GPUs."""
        if u >= 0.9:
            return None
        return max(1, round(2 ** (u / 0.9 * math.log2(self.gpus))))

    def _decode_compact(
        self, classes: int, spread_u: float, growth_u: float, decay_u: float, cap: int | None
    ) -> Candidate:
        # largest/smallest size inside class i is at most spread * growth^i (2x .. 10^5x)
        spread = 10 ** (0.3 + 4.7 * spread_u)
        growth = 10 ** (2.0 * growth_u - 1.0)
        bounds: list[float] = []
        start = float(self.sizes[0])
        for index in range(classes - 1):
            bound = start * max(spread * growth**index, 1.5)
            later = int(np.searchsorted(self.sizes, bound, side="right"))
            if later >= len(self.sizes):
                break  # every job fits below: a class above it would stay empty
            bounds.append(bound)
            start = float(self.sizes[later])
        # weight ratio between consecutive classes: 1 (equal) .. 1/1000
        decay = 10 ** (-3.0 * decay_u)
        weights = [decay**index for index in range(len(bounds) + 1)]
        return canonical_candidate(bounds, weights, cap)

    def _decode_full(
        self, classes: int, steps: np.ndarray, raw_weights: np.ndarray, cap: int | None
    ) -> Candidate:
        low = math.log10(max(float(self.sizes[0]), 1.0))
        high = math.log10(max(float(self.sizes[-1]), 10.0))
        cuts = np.cumsum(0.05 + steps[: classes - 1])
        cuts = cuts / (cuts[-1] + 0.05 + steps[-1]) if classes > 1 else cuts
        bounds = [10 ** (low + (high - low) * float(c)) for c in cuts]
        weights = [0.001 + float(w) for w in raw_weights[:classes]]
        return canonical_candidate(bounds, weights, cap)
