"""Search objectives: which simulation metrics a search minimises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "DEFAULT_OBJECTIVES",
    "OBJECTIVES",
    "ObjectiveError",
    "objective_values",
    "parse_objectives",
]

#: objective name -> metric of an evaluation (see ``evaluation.METRICS``); all minimised
OBJECTIVES: Mapping[str, str] = {
    "mean_error": "error_mean",
    "p99_error": "error_p99",
    "mean_jct": "jct_mean",
    "p99_jct": "jct_p99",
    "mean_unfairness": "unfairness_mean",
    "p99_unfairness": "unfairness_p99",
}

#: predictability against speed, the published trade-off
DEFAULT_OBJECTIVES = ("mean_error", "mean_jct")


class ObjectiveError(ValueError):
    """Objectives named wrongly; the message lists the known names."""


def parse_objectives(names: Sequence[str] | str) -> tuple[str, ...]:
    """Validated, de-duplicated objective names (a comma-separated string or a list).

    Raises:
        ObjectiveError: an unknown name, fewer than two objectives, or a repeated one.
    """
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    items = [n for n in items if n]
    unknown = [n for n in items if n not in OBJECTIVES]
    if unknown:
        raise ObjectiveError(
            f"unknown objective(s) {', '.join(map(repr, unknown))}; known: {', '.join(OBJECTIVES)}"
        )
    if len(set(items)) != len(items):
        raise ObjectiveError(f"objectives repeat: {', '.join(items)}")
    if len(items) < 2:
        raise ObjectiveError(
            f"a Pareto search needs at least 2 objectives, got {len(items)}; "
            f"choose from {', '.join(OBJECTIVES)}"
        )
    return tuple(items)


def objective_values(metrics: Mapping[str, float], objectives: Sequence[str]) -> list[float]:
    """The objective vector of one evaluation (nan metrics count as +inf: never on a front)."""
    values = []
    for name in objectives:
        value = float(metrics[OBJECTIVES[name]])
        values.append(value if value == value else float("inf"))
    return values
