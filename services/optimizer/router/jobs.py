"""Training and judging a router on the labelled MMLU outcomes (the CLI's and the service's work).

The dataset's two models stand in for two catalog models (by default the cheap Mixtral for
``gpt-4o-mini`` and GPT-4 for ``gpt-4o``): the router learns, per candidate, whether that
class of model answers a prompt correctly. The escalation threshold is calibrated out of
domain inside the training domains, and every evaluation uses domains the router was not
fit on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from llmproxy.optimizer.router.dataset import (
    CHEAP_MODEL,
    DEFAULT_DATA_DIR,
    STRONG_MODEL,
    RoutingData,
    load_mmlu,
)
from llmproxy.optimizer.router.embedding_cache import embed_cached
from llmproxy.optimizer.router.model import RULES, Router, escalation_key, threshold_of_cut
from llmproxy.optimizer.router.training import fit_policy, point_at_quality, routing_curve
from llmproxy.platform.embeddings import MAX_TOKENS, MODEL_ID, TextEmbedder
from llmproxy.platform.errors import InvalidArgumentError

__all__ = ["Evaluation", "LabelledPrompt", "evaluate_router", "train_router"]


@dataclass(frozen=True, slots=True)
class LabelledPrompt:
    """One extra training example (from feedback): did each model class answer it well?"""

    prompt: str
    cheap_correct: bool
    strong_correct: bool
    #: a domain name of its own, so calibration never splits across it ("feedback")
    domain: str = "feedback"


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
    seed: int = 7,
    extra_examples: Sequence[LabelledPrompt] = (),
    rules: Sequence[str] = RULES,
) -> Router:
    """Fit a router on ``domains`` (all but ``exclude_domains``) with a calibrated threshold.

    ``embedder`` should cut prompts to :data:`ROUTING_MAX_TOKENS` (what the gateway embeds);
    ``extra_examples`` (feedback) join the training prompts, each under its own domain name.
    """
    if cheap_model == strong_model:
        raise InvalidArgumentError("the cheap and strong models must differ", field="models")
    chosen = _split_domains(data_dir, domains, exclude_domains)
    data = load_mmlu(data_dir, domains=chosen, per_domain_limit=per_domain_limit)
    prompts = list(data.prompts)
    vectors = embed_cached(data.prompts, embedder)
    domains = list(data.domains)
    cheap_ok, strong_ok = data.correct[CHEAP_MODEL], data.correct[STRONG_MODEL]
    extra = list(extra_examples)
    if extra:
        prompts += [e.prompt for e in extra]
        vectors = np.vstack([vectors, embedder.embed([e.prompt for e in extra])])
        domains += [e.domain for e in extra]
        cheap_ok = np.concatenate([cheap_ok, [e.cheap_correct for e in extra]]).astype(bool)
        strong_ok = np.concatenate([strong_ok, [e.strong_correct for e in extra]]).astype(bool)
    fitted = fit_policy(
        vectors,
        prompts,
        domains,
        cheap_ok,
        strong_ok,
        cheap_model=cheap_model,
        strong_model=strong_model,
        version=version,
        embedding_model=MODEL_ID,
        embedding_max_tokens=int(getattr(embedder, "max_tokens", MAX_TOKENS)),
        quality_fraction=quality_fraction,
        inner_folds=calibration_folds,
        seed=seed,
        rules=rules,
        label_sources={cheap_model: CHEAP_MODEL, strong_model: STRONG_MODEL},
    )
    metrics = {
        "train_prompts": float(len(prompts)),
        "feedback_examples": float(len(extra)),
        "calibration_strong_share": fitted.calibration.strong_share,
        "calibration_accuracy": fitted.calibration.accuracy,
        "quality_fraction": quality_fraction,
        "regularization_C": fitted.setting.regularization,
        "embedding_weight": fitted.setting.embedding_weight,
        "words_weight": fitted.setting.words_weight,
    }
    return replace(fitted.router, metrics=metrics)


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
    key = escalation_key(router.predict_many(vectors, data.prompts), router.rule)
    cheap_ok, strong_ok = data.correct[CHEAP_MODEL], data.correct[STRONG_MODEL]
    escalate = key < threshold_of_cut(router.threshold, router.rule)
    curve = routing_curve(key, cheap_ok, strong_ok)
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
