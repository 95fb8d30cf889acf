"""Fitting a router and measuring it (pure: arrays in, numbers out; scikit-learn inside).

The measure is RouteLLM's: sweep the router's threshold, and at each share of calls sent
to the strong model read the accuracy of the mix. A random router reaches, at share ``s``,
``(1 - s) * acc_cheap + s * acc_strong`` in expectation; a useful router lies above it.
The headline is the smallest strong-call share (and the money) that keeps 95% of the
strong model's accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from llmproxy.optimizer.router.model import Router
from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "Curve",
    "QualityPoint",
    "calibrate_threshold",
    "fit_router",
    "out_of_domain_confidence",
    "point_at_quality",
    "random_accuracy",
    "routing_curve",
    "strong_share_at_threshold",
]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def fit_router(
    vectors: npt.NDArray[np.floating[Any]],
    labels: Mapping[str, Bools],
    *,
    version: str,
    embedding_model: str,
    threshold: float = 0.5,
    regularization: float = 1.0,
    trained_on: Sequence[str] = (),
    label_sources: Mapping[str, str] | None = None,
    seed: int = 0,
) -> Router:
    """One logistic regression per candidate model (``labels`` ordered cheapest first).

    ``regularization`` is scikit-learn's ``C`` (smaller: smoother). A candidate whose
    labels are all one value gets a constant predictor (its observed rate).
    """
    if not labels:
        raise InvalidArgumentError("no candidate models to train for", field="candidate_models")
    n = vectors.shape[0]
    if n == 0:
        raise InvalidArgumentError("no training prompts", field="train_domains")
    weights = np.zeros((len(labels), vectors.shape[1]))
    bias = np.zeros(len(labels))
    for row, (model, y) in enumerate(labels.items()):
        if y.shape != (n,):
            raise InvalidArgumentError(f"labels of {model} do not match the {n} prompts")
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        if y.all() or not y.any():
            bias[row] = np.log(rate / (1 - rate))
            continue
        classifier = LogisticRegression(C=regularization, max_iter=2000, random_state=seed)
        classifier.fit(vectors, y)
        weights[row] = classifier.coef_[0]
        bias[row] = classifier.intercept_[0]
    return Router(
        version=version,
        candidate_models=tuple(labels),
        weights=weights,
        bias=bias,
        threshold=threshold,
        embedding_model=embedding_model,
        trained_on=tuple(trained_on),
        label_sources=dict(label_sources or {}),
    )


@dataclass(frozen=True, slots=True)
class Curve:
    """Accuracy and cost of the mix after each number of strong calls ``k = 0..n``.

    Prompts are ranked by how much the router wants the strong model for them (lowest
    predicted cheap-model quality first); the first ``k`` go to the strong model.
    """

    #: ``(n + 1,)``: accuracy with k strong calls
    accuracy: Floats
    #: ``(n + 1,)``: total cost with k strong calls (same unit as the per-prompt costs)
    cost: Floats
    #: the ranking score (cheap-model confidence) sorted ascending, aligned with the order
    confidence: Floats

    @property
    def n(self) -> int:
        return len(self.accuracy) - 1

    def share(self, k: int) -> float:
        return k / self.n


def routing_curve(
    cheap_confidence: Floats,
    cheap_correct: Bools,
    strong_correct: Bools,
    *,
    cheap_cost: Floats | None = None,
    strong_cost: Floats | None = None,
) -> Curve:
    """The exact curve over every cut of the ranking (not a coarse threshold grid)."""
    n = len(cheap_confidence)
    if n == 0 or len(cheap_correct) != n or len(strong_correct) != n:
        raise InvalidArgumentError("confidence and outcome arrays must be non-empty and aligned")
    order = np.argsort(cheap_confidence, kind="stable")
    cheap_ok = cheap_correct[order].astype(np.float64)
    strong_ok = strong_correct[order].astype(np.float64)
    zeros = np.zeros(1)
    strong_prefix = np.concatenate([zeros, np.cumsum(strong_ok)])
    cheap_suffix = np.concatenate([zeros, np.cumsum(cheap_ok)])
    cheap_rest = cheap_suffix[-1] - cheap_suffix
    accuracy = (strong_prefix + cheap_rest) / n
    c_cost = np.ones(n) * 0.0 if cheap_cost is None else cheap_cost[order]
    s_cost = np.ones(n) if strong_cost is None else strong_cost[order]
    s_prefix = np.concatenate([zeros, np.cumsum(s_cost)])
    c_prefix = np.concatenate([zeros, np.cumsum(c_cost)])
    cost = s_prefix + (c_prefix[-1] - c_prefix)
    return Curve(accuracy=accuracy, cost=cost, confidence=cheap_confidence[order])


def random_accuracy(share: float, cheap_accuracy: float, strong_accuracy: float) -> float:
    """Expected accuracy of sending a random ``share`` of calls to the strong model."""
    return (1 - share) * cheap_accuracy + share * strong_accuracy


@dataclass(frozen=True, slots=True)
class QualityPoint:
    """The cheapest cut of a curve that reaches a quality target."""

    target_accuracy: float
    strong_calls: int
    strong_share: float
    accuracy: float
    cost: float
    #: the cheap-confidence threshold that realises this cut (escalate below it)
    threshold: float
    reached: bool


def point_at_quality(curve: Curve, target_accuracy: float) -> QualityPoint:
    """The fewest strong calls whose mix reaches ``target_accuracy`` (all of them if none)."""
    meeting = np.flatnonzero(curve.accuracy >= target_accuracy - 1e-12)
    reached = meeting.size > 0
    k = int(meeting[0]) if reached else curve.n
    return QualityPoint(
        target_accuracy=target_accuracy,
        strong_calls=k,
        strong_share=curve.share(k),
        accuracy=float(curve.accuracy[k]),
        cost=float(curve.cost[k]),
        threshold=_threshold_for_cut(curve.confidence, k),
        reached=reached,
    )


def _threshold_for_cut(sorted_confidence: Floats, k: int) -> float:
    """A threshold t with exactly the first k (lowest-confidence) prompts below it."""
    n = len(sorted_confidence)
    if k <= 0:
        return float(max(0.0, sorted_confidence[0] - 1e-9))
    if k >= n:
        return float(min(1.0, sorted_confidence[-1] + 1e-9))
    return float((sorted_confidence[k - 1] + sorted_confidence[k]) / 2)


def calibrate_threshold(
    cheap_confidence: Floats,
    cheap_correct: Bools,
    strong_correct: Bools,
    *,
    quality_fraction: float = 0.95,
) -> QualityPoint:
    """The threshold keeping ``quality_fraction`` of the strong model's accuracy on this data.

    Meant for out-of-fold predictions on the training domains, so the threshold is never
    fitted on the prompts it is then judged on.
    """
    if not 0 < quality_fraction <= 1:
        raise InvalidArgumentError(
            f"quality_fraction must be within (0, 1], got {quality_fraction}",
            field="quality_fraction",
        )
    curve = routing_curve(cheap_confidence, cheap_correct, strong_correct)
    return point_at_quality(curve, quality_fraction * float(strong_correct.mean()))


def strong_share_at_threshold(cheap_confidence: Floats, threshold: float) -> float:
    """Share of prompts a threshold escalates (cheap confidence below it)."""
    return float((cheap_confidence < threshold).mean())


def out_of_domain_confidence(
    vectors: npt.NDArray[np.floating[Any]],
    domains: Sequence[str],
    cheap_correct: Bools,
    *,
    folds: Sequence[Sequence[str]],
    regularization: float = 1.0,
    seed: int = 0,
) -> Floats:
    """P(cheap correct) for every prompt, each predicted by a model that never saw its domain."""
    names = np.asarray(domains)
    confidence = np.zeros(len(names))
    for group in folds:
        held_out = np.isin(names, list(group))
        if not held_out.any() or held_out.all():
            continue
        router = fit_router(
            vectors[~held_out],
            {"cheap": cheap_correct[~held_out]},
            version="calibration",
            embedding_model="",
            regularization=regularization,
            seed=seed,
        )
        confidence[held_out] = router.predict_many(vectors[held_out])[:, 0]
    return confidence
