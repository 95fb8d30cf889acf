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
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from llmproxy.optimizer.router.dataset import domain_folds
from llmproxy.optimizer.router.features import (
    TEXT_FEATURES,
    WORD_BUCKETS,
    text_features_many,
    words_matrix,
)
from llmproxy.optimizer.router.model import RULES, Router, escalation_key, threshold_of_cut
from llmproxy.platform.embeddings import MAX_TOKENS
from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_SETTINGS",
    "Curve",
    "PolicyFit",
    "QualityPoint",
    "Setting",
    "calibrate_threshold",
    "fit_policy",
    "fit_router",
    "out_of_domain_confidence",
    "out_of_domain_probabilities",
    "point_at_quality",
    "random_accuracy",
    "routing_curve",
    "strong_share_at_threshold",
]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def _design(
    vectors: npt.NDArray[np.floating[Any]],
    prompts: Sequence[str],
    text_features: bool,
    embedding_weight: float,
    words_weight: float = 0.0,
) -> tuple[Floats | sp.csr_matrix, Floats, Floats]:
    """The fitted design matrix (sparse with the words block), and the text block's mean and
    scale (for folding back)."""
    parts = [vectors.astype(np.float64) * embedding_weight] if embedding_weight else []
    mean = scale = np.zeros(0)
    if text_features:
        raw = text_features_many(prompts)
        mean, scale = raw.mean(axis=0), raw.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        parts.append((raw - mean) / scale)
    if not parts:
        raise InvalidArgumentError("a router needs features: an embedding weight or text features")
    if words_weight:
        return (
            sp.hstack(
                [sp.csr_matrix(np.hstack(parts)), words_matrix(prompts) * words_weight],
                format="csr",
            ),
            mean,
            scale,
        )
    return np.hstack(parts), mean, scale


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
    prompts: Sequence[str] = (),
    text_features: bool = False,
    embedding_weight: float = 1.0,
    rule: str = "confidence",
    embedding_max_tokens: int = MAX_TOKENS,
    words_weight: float = 0.0,
) -> Router:
    """One logistic regression per candidate model (``labels`` ordered cheapest first).

    ``regularization`` is scikit-learn's ``C`` (smaller: smoother). With ``text_features``
    the standardised :mod:`.features` of ``prompts`` join the embedding, whose columns are
    multiplied by ``embedding_weight`` (0: left out); ``words_weight`` (0: left out) scales
    the hashed words block (a larger weight: a weaker penalty on it). Scaling and
    standardisation are folded into the stored weights, so the router reads raw features.
    A candidate whose labels are all one value gets a constant predictor (its observed rate).
    """
    if not labels:
        raise InvalidArgumentError("no candidate models to train for", field="candidate_models")
    n = vectors.shape[0]
    if n == 0:
        raise InvalidArgumentError("no training prompts", field="train_domains")
    if (text_features or words_weight) and len(prompts) != n:
        raise InvalidArgumentError("text features and words need the training prompts")
    if words_weight < 0:
        raise InvalidArgumentError(f"words_weight must be >= 0, got {words_weight}")
    design, mean, scale = _design(vectors, prompts, text_features, embedding_weight, words_weight)
    dims = vectors.shape[1]
    extra = len(TEXT_FEATURES) if text_features else 0
    weights = np.zeros((len(labels), dims + extra))
    words = np.zeros((len(labels), WORD_BUCKETS)) if words_weight else None
    bias = np.zeros(len(labels))
    for row, (model, y) in enumerate(labels.items()):
        if y.shape != (n,):
            raise InvalidArgumentError(f"labels of {model} do not match the {n} prompts")
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        if y.all() or not y.any():
            bias[row] = np.log(rate / (1 - rate))
            continue
        classifier = LogisticRegression(C=regularization, max_iter=3000, random_state=seed)
        classifier.fit(design, y)
        coef, intercept = classifier.coef_[0], float(classifier.intercept_[0])
        if words is not None:
            words[row] = coef[-WORD_BUCKETS:] * words_weight
            coef = coef[:-WORD_BUCKETS]
        if embedding_weight:
            weights[row, :dims] = coef[:dims] * embedding_weight
            coef = coef[dims:]
        if text_features:
            weights[row, dims:] = coef / scale
            intercept -= float(np.sum(coef * mean / scale))
        bias[row] = intercept
    return Router(
        version=version,
        candidate_models=tuple(labels),
        weights=weights,
        bias=bias,
        threshold=threshold,
        embedding_model=embedding_model,
        trained_on=tuple(trained_on),
        label_sources=dict(label_sources or {}),
        rule=rule,
        text_features=text_features,
        embedding_max_tokens=embedding_max_tokens,
        word_weights=words,
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
        return float(max(-1.0, sorted_confidence[0] - 1e-9))
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


@dataclass(frozen=True, slots=True)
class Setting:
    """One candidate setting of the router, chosen among by cross-validation over domains."""

    regularization: float
    embedding_weight: float
    text_features: bool = True
    #: weight of the hashed words block (0: left out; C on it is ``C * weight**2``)
    words_weight: float = 0.0

    def describe(self) -> str:
        words = f", words x{self.words_weight:g}" if self.words_weight else ""
        return (
            f"C={self.regularization:g}, embedding x{self.embedding_weight:g}, "
            f"text features {'on' if self.text_features else 'off'}{words}"
        )


#: what :func:`fit_policy` chooses among by default: text features alone, with the
#: embedding, with the hashed words at three strengths, and the embedding alone
DEFAULT_SETTINGS = (
    Setting(0.01, 0.0),
    Setting(0.03, 0.0),
    Setting(0.01, 1.0),
    Setting(0.01, 0.0, words_weight=1.0),
    Setting(0.03, 0.0, words_weight=1.0),
    Setting(0.003, 0.0, words_weight=2.0),
    Setting(0.01, 1.0, words_weight=1.0),
    Setting(1.0, 1.0, text_features=False),
)


def out_of_domain_probabilities(
    vectors: npt.NDArray[np.floating[Any]],
    prompts: Sequence[str],
    domains: Sequence[str],
    labels: Mapping[str, Bools],
    setting: Setting,
    *,
    folds: Sequence[Sequence[str]],
    seed: int = 0,
) -> Floats:
    """``(n, models)`` P(correct), each prompt predicted by a model that never saw its domain."""
    names = np.asarray(domains)
    out = np.zeros((len(names), len(labels)))
    for group in folds:
        held = np.isin(names, list(group))
        if not held.any() or held.all():
            continue
        train = np.flatnonzero(~held)
        router = fit_router(
            vectors[train],
            {m: y[train] for m, y in labels.items()},
            version="calibration",
            embedding_model="",
            regularization=setting.regularization,
            prompts=[prompts[int(i)] for i in train],
            text_features=setting.text_features,
            embedding_weight=setting.embedding_weight,
            words_weight=setting.words_weight,
            seed=seed,
        )
        test = np.flatnonzero(held)
        out[test] = router.predict_many(vectors[test], [prompts[int(i)] for i in test])
    return out


@dataclass(frozen=True, slots=True)
class PolicyFit:
    router: Router
    setting: Setting
    #: (setting, rule) -> strong share needed on the training domains' out-of-domain cut
    tried: Mapping[tuple[Setting, str], float]
    calibration: QualityPoint


def fit_policy(
    vectors: npt.NDArray[np.floating[Any]],
    prompts: Sequence[str],
    domains: Sequence[str],
    cheap_correct: Bools,
    strong_correct: Bools,
    *,
    cheap_model: str,
    strong_model: str,
    version: str,
    embedding_model: str,
    embedding_max_tokens: int = MAX_TOKENS,
    quality_fraction: float = 0.95,
    settings: Sequence[Setting] = DEFAULT_SETTINGS,
    rules: Sequence[str] = RULES,
    inner_folds: int = 4,
    seed: int = 7,
    label_sources: Mapping[str, str] | None = None,
) -> PolicyFit:
    """A (cheap, strong) router chosen and calibrated on these (training) domains only.

    For each setting, out-of-domain predictions over ``inner_folds`` groups of the
    domains; for each rule, the cut keeping ``quality_fraction`` of the strong model's
    accuracy there. The (setting, rule) needing the fewest strong calls wins; its cut is
    the threshold; the router is then fit on every prompt. What the benchmark judges on
    held-out domains and what ``llmproxy router train`` stores are this one function.
    """
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise InvalidArgumentError(f"rules must be among {RULES}, got {list(rules)}")
    if not settings:
        raise InvalidArgumentError("no router settings to choose among")
    distinct = sorted(set(domains))
    if len(distinct) < 2:
        raise InvalidArgumentError(
            "train on at least two domains (the threshold is calibrated across domains)",
            field="domains",
        )
    folds = domain_folds(distinct, min(inner_folds, len(distinct)), seed)
    labels = {"cheap": cheap_correct, "strong": strong_correct}
    tried: dict[tuple[Setting, str], float] = {}
    best: tuple[float, int, Setting, str, QualityPoint] | None = None
    for order, setting in enumerate(settings):
        predicted = out_of_domain_probabilities(
            vectors, prompts, domains, labels, setting, folds=folds, seed=seed
        )
        for rule in rules:
            point = calibrate_threshold(
                escalation_key(predicted, rule),
                cheap_correct,
                strong_correct,
                quality_fraction=quality_fraction,
            )
            tried[(setting, rule)] = point.strong_share
            if best is None or point.strong_share < best[0] - 1e-12:
                best = (point.strong_share, order, setting, rule, point)
    assert best is not None
    _, _, setting, rule, point = best
    low = -1.0 if rule == "gain" else 0.0
    router = fit_router(
        vectors,
        {cheap_model: cheap_correct, strong_model: strong_correct},
        version=version,
        embedding_model=embedding_model,
        threshold=float(np.clip(threshold_of_cut(point.threshold, rule), low, 1.0)),
        regularization=setting.regularization,
        trained_on=distinct,
        label_sources=label_sources,
        seed=seed,
        prompts=prompts,
        text_features=setting.text_features,
        embedding_weight=setting.embedding_weight,
        words_weight=setting.words_weight,
        rule=rule,
        embedding_max_tokens=embedding_max_tokens,
    )
    return PolicyFit(router=router, setting=setting, tried=tried, calibration=point)
