"""Pareto fronts, the presets an operator picks from, and hypervolume."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .objectives import objective_values

__all__ = ["PRESETS", "hypervolume", "non_dominated", "presets"]

#: most predictable, balanced, lowest JCT
PRESETS = ("pred", "bal", "jct")
_ERRORS = ("mean_error", "p99_error")
_JCTS = ("mean_jct", "p99_jct")


def non_dominated(points: Sequence[Mapping[str, float]], objectives: Sequence[str]) -> list[int]:
    """Indices of the points no other point dominates (duplicates keep the first)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    if not points:
        return []
    F = np.array([objective_values(p, objectives) for p in points], dtype=float)
    finite = np.flatnonzero(np.all(np.isfinite(F), axis=1))
    if len(finite) == 0:
        return []
    front = NonDominatedSorting().do(F[finite], only_non_dominated_front=True)
    chosen: list[int] = []
    seen: set[tuple[float, ...]] = set()
    for index in sorted(int(finite[i]) for i in front):
        key = tuple(F[index])
        if key not in seen:
            seen.add(key)
            chosen.append(index)
    return chosen


def _first(objectives: Sequence[str], wanted: Sequence[str]) -> str:
    for name in wanted:
        if name in objectives:
            return name
    return objectives[0] if wanted is _ERRORS else objectives[-1]


def presets(points: Sequence[Mapping[str, float]], objectives: Sequence[str]) -> dict[str, int]:
    """Index (into ``points``, which should be a front) of each preset.

    ``pred``: the lowest prediction error (the first objective when no error objective is
    searched); ``jct``: the lowest JCT (else the last objective); ``bal``: the point closest
    to the ideal point after scaling each objective's log to [0, 1] over the front."""
    if not points:
        return {}
    F = np.array([objective_values(p, objectives) for p in points], dtype=float)
    pred_obj = objectives.index(_first(objectives, _ERRORS))
    jct_obj = objectives.index(_first(objectives, _JCTS))
    chosen = {
        "pred": int(np.lexsort((F[:, jct_obj], F[:, pred_obj]))[0]),
        "jct": int(np.lexsort((F[:, pred_obj], F[:, jct_obj]))[0]),
    }
    logs = np.log10(1.0 + F)
    span = logs.max(axis=0) - logs.min(axis=0)
    scaled = (logs - logs.min(axis=0)) / np.where(span > 0, span, 1.0)
    chosen["bal"] = int(np.argmin(np.linalg.norm(scaled, axis=1)))
    return chosen


def hypervolume(
    points: Sequence[Mapping[str, float]], objectives: Sequence[str], reference: Sequence[float]
) -> float:
    """Hypervolume dominated by ``points`` up to ``reference`` (same units as the
    objectives), divided by the reference box's volume: 0 (nothing) .. 1."""
    from pymoo.indicators.hv import HV

    ref = np.asarray(reference, dtype=float)
    if len(ref) != len(objectives) or np.any(ref <= 0):
        raise ValueError("the reference point needs one positive value per objective")
    if not points:
        return 0.0
    F = np.array([objective_values(p, objectives) for p in points], dtype=float) / ref
    F = F[np.all(F < 1.0, axis=1)]
    if len(F) == 0:
        return 0.0
    value = HV(ref_point=np.ones(len(ref)))(F)
    return float(value) if value is not None and math.isfinite(float(value)) else 0.0
