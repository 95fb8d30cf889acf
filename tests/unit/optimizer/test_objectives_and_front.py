"""Objectives are validated by name; fronts, presets and hypervolume are what an operator
reads off a search."""

from __future__ import annotations

import pytest

from llmproxy.optimizer.pcs.front import hypervolume, non_dominated, presets
from llmproxy.optimizer.pcs.objectives import ObjectiveError, parse_objectives


def point(error: float, jct: float, rho: float = 0.0) -> dict[str, float]:
    return {"error_mean": error, "jct_mean": jct, "unfairness_mean": rho}


def test_objectives_are_parsed_and_checked() -> None:
    assert parse_objectives("mean_error, mean_jct") == ("mean_error", "mean_jct")
    with pytest.raises(
        ObjectiveError, match=r"unknown objective\(s\) 'latency'.*known: mean_error"
    ):
        parse_objectives("mean_error,latency")
    with pytest.raises(ObjectiveError, match="at least 2 objectives"):
        parse_objectives(["mean_jct"])
    with pytest.raises(ObjectiveError, match="repeat"):
        parse_objectives("mean_jct,mean_jct")


def test_front_keeps_only_non_dominated_points() -> None:
    points = [point(1, 100), point(2, 50), point(3, 60), point(0.5, 200), point(2, 50)]
    assert non_dominated(points, ["mean_error", "mean_jct"]) == [0, 1, 3]


def test_nan_metrics_never_reach_the_front() -> None:
    points = [point(float("nan"), 1), point(1, 100)]
    assert non_dominated(points, ["mean_error", "mean_jct"]) == [1]


def test_presets_pick_most_predictable_fastest_and_balanced() -> None:
    front = [point(0.1, 1000), point(1, 300), point(10, 250), point(30, 240)]
    chosen = presets(front, ["mean_error", "mean_jct"])
    assert chosen["pred"] == 0
    assert chosen["jct"] == 3
    assert chosen["bal"] in (1, 2)


def test_hypervolume_of_known_fronts() -> None:
    objectives = ["mean_error", "mean_jct"]
    assert hypervolume([point(50, 50)], objectives, [100, 100]) == pytest.approx(0.25)
    two = [point(25, 75), point(75, 25)]
    assert hypervolume(two, objectives, [100, 100]) == pytest.approx(0.25 * 0.75 * 2 - 0.25 * 0.25)
    assert hypervolume([point(150, 10)], objectives, [100, 100]) == 0.0
