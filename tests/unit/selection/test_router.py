"""The router: training, its artifact, the routing curve and the calibrated threshold."""

from __future__ import annotations

import numpy as np
import pytest

from llmproxy.optimizer.router.dataset import (
    CHEAP_MODEL,
    DEFAULT_DATA_DIR,
    STRONG_MODEL,
    domain_folds,
    load_mmlu,
)
from llmproxy.optimizer.router.model import Router
from llmproxy.optimizer.router.training import (
    calibrate_threshold,
    fit_router,
    out_of_domain_confidence,
    point_at_quality,
    random_accuracy,
    routing_curve,
    strong_share_at_threshold,
)
from llmproxy.platform.errors import InvalidArgumentError


def synthetic(n: int = 600, seed: int = 0):  # type: ignore[no-untyped-def]
    """Prompts on a 'hard' axis: the cheap model fails hard ones, the strong one rarely."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 8))
    hardness = vectors[:, 0]
    cheap_ok = rng.random(n) < 1 / (1 + np.exp(3 * hardness))
    strong_ok = rng.random(n) < 1 / (1 + np.exp(3 * (hardness - 1.5)))
    return vectors, cheap_ok, strong_ok


def test_a_trained_router_knows_which_prompts_the_cheap_model_gets_wrong() -> None:
    vectors, cheap_ok, strong_ok = synthetic()
    router = fit_router(
        vectors, {"small": cheap_ok, "large": strong_ok}, version="v1", embedding_model="e"
    )
    easy, hard = np.zeros(8), np.zeros(8)
    easy[0], hard[0] = -2.0, 2.0
    assert router.predict(easy)["small"] > 0.8 > 0.2 > router.predict(hard)["small"]
    assert router.predict(hard)["large"] > router.predict(hard)["small"]


def test_the_router_beats_random_routing_on_its_curve() -> None:
    vectors, cheap_ok, strong_ok = synthetic(seed=1)
    train, test = slice(0, 400), slice(400, None)
    router = fit_router(
        vectors[train],
        {"small": cheap_ok[train], "large": strong_ok[train]},
        version="v1",
        embedding_model="e",
    )
    confidence = router.predict_many(vectors[test])[:, 0]
    curve = routing_curve(confidence, cheap_ok[test], strong_ok[test])
    cheap, strong = cheap_ok[test].mean(), strong_ok[test].mean()
    assert curve.accuracy[0] == pytest.approx(cheap) and curve.accuracy[-1] == pytest.approx(strong)
    half = curve.n // 2
    assert curve.accuracy[half] > random_accuracy(0.5, cheap, strong) + 0.05


def test_the_curve_is_exact_and_prices_each_cut() -> None:
    confidence = np.array([0.9, 0.1, 0.5, 0.3])
    cheap_ok = np.array([True, False, True, False])
    strong_ok = np.array([True, True, False, True])
    curve = routing_curve(
        confidence,
        cheap_ok,
        strong_ok,
        cheap_cost=np.full(4, 1.0),
        strong_cost=np.full(4, 10.0),
    )
    # escalation order: 0.1 (fixed by strong), 0.3 (fixed), 0.5 (broken by strong), 0.9
    assert list(curve.accuracy) == [0.5, 0.75, 1.0, 0.75, 0.75]
    assert list(curve.cost) == [4.0, 13.0, 22.0, 31.0, 40.0]
    point = point_at_quality(curve, 0.95)
    assert (point.strong_calls, point.strong_share, point.reached) == (2, 0.5, True)
    # the threshold realises that cut: exactly the two least confident prompts escalate
    assert strong_share_at_threshold(confidence, point.threshold) == 0.5
    assert not point_at_quality(curve, 1.01).reached


def test_the_threshold_is_calibrated_to_keep_the_wanted_share_of_strong_accuracy() -> None:
    vectors, cheap_ok, strong_ok = synthetic(n=2000, seed=2)
    domains = [f"d{i % 8}" for i in range(2000)]
    confidence = out_of_domain_confidence(
        vectors, domains, cheap_ok, folds=domain_folds(domains, 4, seed=0)
    )
    point = calibrate_threshold(confidence, cheap_ok, strong_ok, quality_fraction=0.95)
    escalate = confidence < point.threshold
    accuracy = np.where(escalate, strong_ok, cheap_ok).mean()
    assert accuracy >= 0.95 * strong_ok.mean() - 1e-9
    assert escalate.mean() < 0.9  # it saves calls
    with pytest.raises(InvalidArgumentError, match="quality_fraction"):
        calibrate_threshold(confidence, cheap_ok, strong_ok, quality_fraction=1.5)


def test_the_artifact_round_trips_without_pickles_and_rejects_garbage() -> None:
    vectors, cheap_ok, strong_ok = synthetic()
    router = fit_router(
        vectors,
        {"small": cheap_ok, "large": strong_ok},
        version="v7",
        embedding_model="e",
        threshold=0.62,
        trained_on=["a", "b"],
    )
    loaded = Router.from_bytes(router.to_bytes())
    assert (loaded.version, loaded.threshold, loaded.trained_on) == ("v7", 0.62, ("a", "b"))
    assert loaded.predict(vectors[0]) == pytest.approx(router.predict(vectors[0]))
    with pytest.raises(InvalidArgumentError, match="not a router artifact"):
        Router.from_bytes(b"not an npz")
    with pytest.raises(InvalidArgumentError, match="dimensions"):
        router.predict(np.zeros(3))
    with pytest.raises(InvalidArgumentError, match="threshold"):
        router.with_threshold(1.5)


def test_domain_folds_hold_each_domain_out_exactly_once() -> None:
    domains = [f"d{i}" for i in range(10)] * 3
    folds = domain_folds(domains, 3, seed=5)
    assert sorted(d for fold in folds for d in fold) == sorted(set(domains))
    assert folds == domain_folds(domains, 3, seed=5)  # seeded
    with pytest.raises(InvalidArgumentError, match="folds"):
        domain_folds(domains, 11, seed=0)


@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason="../shared/data/routing/mmlu absent")
def test_the_mmlu_data_loads_by_domain_without_contaminated_prompts() -> None:
    data = load_mmlu(DEFAULT_DATA_DIR, domains=["high_school_european_history"])
    assert set(data.domains) == {"high_school_european_history"}
    assert set(data.models) == {CHEAP_MODEL, STRONG_MODEL}
    # one Clemenceau question is listed as contaminated; another on the same passage is not
    assert data.excluded_contaminated == 1
    assert not any("Germany provided the ultimate framework" in p for p in data.prompts)
    assert any("blamed Germany for World War I" in p for p in data.prompts)
    with pytest.raises(InvalidArgumentError, match="unknown domains"):
        load_mmlu(DEFAULT_DATA_DIR, domains=["astrology"])
