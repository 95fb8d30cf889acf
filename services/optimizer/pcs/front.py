"""Pareto fronts, the presets an operator picks from, and hypervolume."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .objectives import objective_values

__all__ = ["PRED_JCT_SLACK", "PRESETS", "hypervolume", "non_dominated", "presets"]

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


#: ``pred`` may be this much slower than the fastest point on the front: at most
#: (1 + slack) x the lowest JCT (1.0: twice the lowest mean JCT)
PRED_JCT_SLACK = 1.0


def _roles(objectives: Sequence[str]) -> tuple[int, int]:
    """(the error objective, the JCT objective) that the presets trade: the first error and
    the first JCT objective searched; without a JCT objective the last one, without an
    error objective the first other one."""
    jct = next((o for o in _JCTS if o in objectives), objectives[-1])
    rest = [o for o in objectives if o != jct]
    pred = next((o for o in _ERRORS if o in rest), rest[0])
    return objectives.index(pred), objectives.index(jct)


def presets(
    points: Sequence[Mapping[str, float]],
    objectives: Sequence[str],
    *,
    pred_jct_slack: float = PRED_JCT_SLACK,
) -> dict[str, int]:
    """Index (into ``points``, which should be a front) of each preset.

    * ``jct``: the lowest JCT (the first JCT objective searched, else the last objective);
      ties go to the lower prediction error.
    * ``pred``: the lowest prediction error (the first error objective, else the first other
      objective) among the points whose JCT is at most ``(1 + pred_jct_slack)`` times the
      lowest JCT on the front. Without that bound ``pred`` would be the end of the front, a
      single FIFO class: 0 % error because every job waits for all earlier ones, at several
      times the JCT of every other point.
    * ``bal``: the knee between the two: among the points whose JCT lies between ``jct``'s
      and ``pred``'s, the one closest to their ideal point after scaling each objective's
      log to [0, 1] over those points. So on a two-objective front ``pred``, ``bal``,
      ``jct`` are ordered: error rises and JCT falls from one to the next.

    Points with a non-finite objective (failed evaluations) are never chosen.
    """
    if not points:
        return {}
    if pred_jct_slack < 0:
        raise ValueError(f"pred_jct_slack must be >= 0, got {pred_jct_slack}")
    F = np.array([objective_values(p, objectives) for p in points], dtype=float)
    usable = np.flatnonzero(np.all(np.isfinite(F), axis=1))
    if len(usable) == 0:
        return {}
    pred_obj, jct_obj = _roles(objectives)
    G = F[usable]
    jct = int(np.lexsort((G[:, pred_obj], G[:, jct_obj]))[0])
    fastest = G[jct, jct_obj]
    bound = fastest + pred_jct_slack * abs(fastest)
    allowed = np.flatnonzero(G[:, jct_obj] <= bound * (1 + 1e-12))
    pred = int(allowed[np.lexsort((G[allowed, jct_obj], G[allowed, pred_obj]))[0]])
    low, high = sorted((G[jct, jct_obj], G[pred, jct_obj]))
    between = np.flatnonzero((G[:, jct_obj] >= low) & (G[:, jct_obj] <= high))
    logs = np.log10(1.0 + np.maximum(G[between], 0.0))
    span = logs.max(axis=0) - logs.min(axis=0)
    scaled = (logs - logs.min(axis=0)) / np.where(span > 0, span, 1.0)
    bal = int(between[np.argmin(np.linalg.norm(scaled, axis=1))])
    return {"pred": int(usable[pred]), "bal": int(usable[bal]), "jct": int(usable[jct])}


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
