"""Objectives are validated by name; fronts, presets and hypervolume are what an operator
reads off a search."""

from __future__ import annotations

import numpy as np
import pytest

from llmproxy.optimizer.pcs.front import PRED_JCT_SLACK, hypervolume, non_dominated, presets
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
    # pred: the lowest error within twice the lowest JCT (480): not the 1000 s point
    assert PRED_JCT_SLACK == 1.0
    assert chosen["pred"] == 1
    assert chosen["jct"] == 3
    assert chosen["bal"] in (1, 2, 3)


def test_pred_is_not_the_degenerate_single_fifo_class() -> None:
    # the shape of a real front (0e4a51): FIFO's 0 % error at 5x the JCT of the rest
    front = [
        point(0.0, 1_467_000),
        point(0.02, 1_053_000),
        point(0.29, 545_000),
        point(0.49, 515_000),
        point(2.0, 361_000),
        point(5.35, 271_000),
    ]
    objectives = ["mean_error", "mean_jct"]
    chosen = presets(front, objectives)
    assert chosen["jct"] == 5
    assert chosen["pred"] == 3  # 0.49 % at 515k s: the most predictable within 2 x 271k s
    assert chosen["bal"] in (3, 4, 5)
    # the bound is a parameter: no slack is the fastest point, unbounded is FIFO again
    assert presets(front, objectives, pred_jct_slack=0.0)["pred"] == 5
    assert presets(front, objectives, pred_jct_slack=1e9)["pred"] == 0
    with pytest.raises(ValueError, match="pred_jct_slack"):
        presets(front, objectives, pred_jct_slack=-1)


def test_presets_are_ordered_on_any_two_objective_front() -> None:
    rng = np.random.default_rng(7)
    objectives = ["mean_error", "mean_jct"]
    for _ in range(200):
        raw = [point(float(e), float(j)) for e, j in 10 ** rng.uniform(-2, 6, (12, 2))]
        front = [raw[i] for i in non_dominated(raw, objectives)]
        chosen = presets(front, objectives)
        pred, bal, jct = (front[chosen[k]] for k in ("pred", "bal", "jct"))
        assert pred["error_mean"] <= bal["error_mean"] <= jct["error_mean"]
        assert pred["jct_mean"] >= bal["jct_mean"] >= jct["jct_mean"]
        assert jct["jct_mean"] == min(p["jct_mean"] for p in front)
        assert pred["jct_mean"] <= 2 * jct["jct_mean"]


def test_presets_skip_failed_points_and_name_other_objectives_sensibly() -> None:
    nan = float("nan")
    front = [point(nan, nan), point(1, 300), point(10, 250)]
    chosen = presets(front, ["mean_error", "mean_jct"])
    assert 0 not in chosen.values()
    assert presets([point(nan, nan)], ["mean_error", "mean_jct"]) == {}
    # without an error objective, jct is still the JCT one and pred the other objective
    fair = [point(0, 100, rho=50), point(0, 150, rho=5), point(0, 400, rho=1)]
    chosen = presets(fair, ["mean_jct", "mean_unfairness"])
    assert chosen["jct"] == 0 and chosen["pred"] == 1


def test_hypervolume_of_known_fronts() -> None:
    objectives = ["mean_error", "mean_jct"]
    assert hypervolume([point(50, 50)], objectives, [100, 100]) == pytest.approx(0.25)
    two = [point(25, 75), point(75, 25)]
    assert hypervolume(two, objectives, [100, 100]) == pytest.approx(0.25 * 0.75 * 2 - 0.25 * 0.25)
    assert hypervolume([point(150, 10)], objectives, [100, 100]) == 0.0
