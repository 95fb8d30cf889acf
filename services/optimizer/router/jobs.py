"""Training and judging a router on the labelled MMLU outcomes (the CLI's and the service's work).

The dataset's two models stand in for two catalog models (by default the cheap Mixtral for
``gpt-4o-mini`` and GPT-4 for ``gpt-4o``): the router learns, per candidate, whether that
class of model answers a prompt correctly. The escalation threshold is calibrated out of
domain inside the training domains, and every evaluation uses domains the router was not
fit on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmproxy.optimizer.router.dataset import (
    CHEAP_MODEL,
    DEFAULT_DATA_DIR,
    STRONG_MODEL,
    RoutingData,
    domain_folds,
    load_mmlu,
)
from llmproxy.optimizer.router.embedding_cache import embed_cached
from llmproxy.optimizer.router.model import Router
from llmproxy.optimizer.router.training import (
    calibrate_threshold,
    fit_router,
    out_of_domain_confidence,
    point_at_quality,
    routing_curve,
)
from llmproxy.platform.embeddings import MODEL_ID, TextEmbedder
from llmproxy.platform.errors import InvalidArgumentError

__all__ = ["Evaluation", "evaluate_router", "train_router"]


def _split_domains(data_dir: Path, domains: Sequence[str], exclude: Sequence[str]) -> list[str]:
    everything = sorted(p.stem.removeprefix("mmlu_") for p in data_dir.glob("mmlu_*.csv"))
    chosen = list(domains) or everything
    unknown = sorted(set(chosen) - set(everything)) + sorted(set(exclude) - set(everything))
    if unknown:
        raise InvalidArgumentError(f"unknown domains {unknown}", field="domains")
    return [d for d in chosen if d not in set(exclude)]


def train_router(
    *,
    version: str,
    embedder: TextEmbedder,
    cheap_model: str = "gpt-4o-mini",
    strong_model: str = "gpt-4o",
    domains: Sequence[str] = (),
    exclude_domains: Sequence[str] = (),
    data_dir: Path = DEFAULT_DATA_DIR,
    per_domain_limit: int = 0,
    quality_fraction: float = 0.95,
    calibration_folds: int = 4,
    regularization: float = 1.0,
    seed: int = 7,
) -> Router:
    """Fit a router on ``domains`` (all but ``exclude_domains``) with a calibrated threshold."""
    if cheap_model == strong_model:
        raise InvalidArgumentError("the cheap and strong models must differ", field="models")
    chosen = _split_domains(data_dir, domains, exclude_domains)
    data = load_mmlu(data_dir, domains=chosen, per_domain_limit=per_domain_limit)
    if len(set(data.domains)) < 2:
        raise InvalidArgumentError(
            "train on at least two domains (the threshold is calibrated across domains)",
            field="domains",
        )
    vectors = embed_cached(data.prompts, embedder)
    cheap_ok, strong_ok = data.correct[CHEAP_MODEL], data.correct[STRONG_MODEL]
    folds = domain_folds(data.domains, min(calibration_folds, len(set(data.domains))), seed)
    confidence = out_of_domain_confidence(
        vectors,
        data.domains,
        cheap_ok,
        folds=folds,
        regularization=regularization,
        seed=seed,
    )
    calibrated = calibrate_threshold(
        confidence, cheap_ok, strong_ok, quality_fraction=quality_fraction
    )
    router = fit_router(
        vectors,
        {cheap_model: cheap_ok, strong_model: strong_ok},
        version=version,
        embedding_model=MODEL_ID,
        threshold=calibrated.threshold,
        regularization=regularization,
        trained_on=sorted(set(data.domains)),
        label_sources={cheap_model: CHEAP_MODEL, strong_model: STRONG_MODEL},
        seed=seed,
    )
    metrics = {
        "train_prompts": float(len(data)),
        "calibration_strong_share": calibrated.strong_share,
        "calibration_accuracy": calibrated.accuracy,
        "quality_fraction": quality_fraction,
    }
    return Router(
        version=router.version,
        candidate_models=router.candidate_models,
        weights=router.weights,
        bias=router.bias,
        threshold=router.threshold,
        embedding_model=router.embedding_model,
        trained_on=router.trained_on,
        metrics=metrics,
        label_sources=router.label_sources,
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    domains: tuple[str, ...]
    prompts: int
    cheap_accuracy: float
    strong_accuracy: float
    #: at the router's own threshold
    strong_share: float
    accuracy: float
    #: the fewest strong calls reaching 95% of the strong model's accuracy (swept threshold)
    share_at_95pct: float


def evaluate_router(
    router: Router,
    embedder: TextEmbedder,
    *,
    domains: Sequence[str] = (),
    data_dir: Path = DEFAULT_DATA_DIR,
    per_domain_limit: int = 0,
) -> Evaluation:
    """Judge ``router`` on held-out domains (default: every domain it was not trained on)."""
    if len(router.candidate_models) != 2:
        raise InvalidArgumentError("evaluation on MMLU needs a two-model (cheap, strong) router")
    chosen = list(domains) or _split_domains(data_dir, (), router.trained_on)
    overlap = sorted(set(chosen) & set(router.trained_on))
    if overlap:
        raise InvalidArgumentError(
            f"router {router.version} was trained on {overlap}: evaluate on other domains",
            field="domains",
        )
    if not chosen:
        raise InvalidArgumentError("no held-out domain is left to evaluate on", field="domains")
    data: RoutingData = load_mmlu(data_dir, domains=chosen, per_domain_limit=per_domain_limit)
    vectors = embed_cached(data.prompts, embedder)
    confidence = router.predict_many(vectors)[:, 0]
    cheap_ok, strong_ok = data.correct[CHEAP_MODEL], data.correct[STRONG_MODEL]
    escalate = confidence < router.threshold
    curve = routing_curve(confidence, cheap_ok, strong_ok)
    point = point_at_quality(curve, 0.95 * float(strong_ok.mean()))
    return Evaluation(
        domains=tuple(sorted(set(data.domains))),
        prompts=len(data),
        cheap_accuracy=float(cheap_ok.mean()),
        strong_accuracy=float(strong_ok.mean()),
        strong_share=float(escalate.mean()),
        accuracy=float(np.where(escalate, strong_ok, cheap_ok).mean()),
        share_at_95pct=point.strong_share,
    )
