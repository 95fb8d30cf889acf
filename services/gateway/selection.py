"""Model selection: which model answers a request, and why (pure).

One function, :func:`select_model`, serves both Ask and Quote, so a quote's "selected"
option is always the model Ask would take with the same inputs. Plain data in — the
catalog (prices, context windows, priors), the profiler's profiles, the active router's
predictions for this prompt, the caller's preferences — and a :class:`Selection` out: the
model, the policy that chose it, the predicted quality, the saving against the reference
model, and every option with the reason it was or was not eligible.

Policies, in order:

* ``pinned`` — the caller named the model: no selection at all.
* ``router:<version>`` / ``cascade:<version>`` — an active router predicted, per candidate,
  the probability of a correct answer. Rule ``confidence``: the cheapest eligible candidate
  whose prediction reaches the router's threshold answers; if none does, the one most likely
  to be right. Rule ``gain``: start at the cheapest and move to a stronger candidate while
  its expected gain (P(stronger) - P(current)) is above the threshold.
  With ``allow_cascade`` the walk from the cheapest candidate upwards is reported as a
  cascade (``escalated`` when it had to go past the cheapest), and a weak cheap answer
  may still be escalated after the call (:func:`answer_needs_escalation`).
* ``preference:<objective>`` — scoring over profiles (or catalog priors): ``cost`` is the
  cheapest model meeting the quality floor, ``quality`` the most likely to be right,
  ``latency`` the fastest meeting the floor, ``balanced``/``weights`` a weighted score.
* ``default`` — no objective, no router: the catalog default (what LLMProxy always did).

``max_cost`` and ``deadline`` rule models out before any policy runs; when they rule out
every model the request is refused (nothing is spent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmproxy.gateway.catalog import Catalog, ModelSpec
from llmproxy.gateway.core import QUOTE_OUTPUT_TOKENS, Choice
from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "OBJECTIVES",
    "ModelProfile",
    "NoEligibleModelError",
    "Option",
    "Preferences",
    "RouterAdvice",
    "Selection",
    "SelectionConfig",
    "Weights",
    "answer_needs_escalation",
    "select_model",
]

#: objectives a caller may name ("" = the app's default)
OBJECTIVES = ("", "cost", "balanced", "quality", "latency")


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What the profiler measured for one model (seconds, nano-dollars, rates in 0..1)."""

    model: str
    requests: int = 0
    ttft_p50_s: float = 0.0
    ttft_p95_s: float = 0.0
    time_per_output_token_p50_s: float = 0.0
    time_per_output_token_p95_s: float = 0.0
    error_rate: float = 0.0
    mean_cost_nanousd: int = 0
    #: task category -> share of good answers per feedback ("" = every category)
    quality_by_category: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Weights:
    cost: float
    latency: float
    quality: float


@dataclass(frozen=True, slots=True)
class Preferences:
    """The caller's wishes, as plain data (the adapter maps the protobuf here)."""

    objective: str = ""
    weights: Weights | None = None
    max_cost_nanousd: int = 0
    deadline_s: float = 0.0
    pinned: str = ""
    allowed: tuple[str, ...] = ()
    allow_cascade: bool = False


@dataclass(frozen=True, slots=True)
class RouterAdvice:
    """The active router's view of this prompt."""

    version: str
    threshold: float
    #: candidate model -> predicted probability of a correct answer
    predictions: Mapping[str, float]
    #: "confidence": the cheapest candidate whose prediction reaches ``threshold``;
    #: "gain": go up from the cheapest while a stronger candidate's predicted gain
    #: P(stronger) - P(current) is above ``threshold`` (may be negative)
    rule: str = "confidence"


@dataclass(frozen=True, slots=True)
class SelectionConfig:
    #: the quality a ``cost``/``latency`` choice must reach when no router sets one
    min_quality: float = 0.7
    #: profile rows needed before measured latency/quality replace the catalog's priors
    min_profile_requests: int = 5
    #: a model failing more often than this (with enough requests measured) is left out
    max_error_rate: float = 0.5


@dataclass(frozen=True, slots=True)
class Option:
    """One model, priced and judged for this request."""

    model: ModelSpec
    estimated_cost_nanousd: int
    #: typical answer time (p50 profile, else the catalog prior)
    estimated_latency_s: float
    #: the latency the deadline is checked against (p95 profile, else the prior)
    latency_bound_s: float
    predicted_quality: float
    #: where the quality came from: "router:<version>", "profile", "catalog"
    quality_source: str
    within_constraints: bool
    excluded_reason: str
    saved_vs_reference_nanousd: int
    #: False when the prompt (plus max_tokens) does not fit its context window
    context_fits: bool = True


@dataclass(frozen=True, slots=True)
class Selection(Choice):
    """The chosen model (a :class:`Choice`, so the request path carries it as before)."""

    predicted_quality: float = 0.0
    escalated: bool = False
    options: tuple[Option, ...] = ()
    reference_model: str = ""
    estimated_saved_nanousd: int = 0
    #: stronger eligible candidates, cheapest first: where a cascade escalates next
    escalation: tuple[ModelSpec, ...] = ()


class NoEligibleModelError(InvalidArgumentError):
    """The request's constraints rule out every model; ``options`` says why for each."""

    def __init__(self, message: str, options: tuple[Option, ...]) -> None:
        super().__init__(message, field="preferences")
        self.options = options


def _objective(prefs: Preferences) -> str:
    if prefs.objective not in OBJECTIVES:
        raise InvalidArgumentError(
            f"unknown objective {prefs.objective!r}; use one of cost, balanced, quality, latency",
            field="preferences.objective",
        )
    if prefs.weights is not None:
        w = prefs.weights
        values = {"cost": w.cost, "latency": w.latency, "quality": w.quality}
        for name, value in values.items():
            if not 0.0 <= value <= 1.0:
                raise InvalidArgumentError(
                    f"preference weight {name} must be within [0, 1], got {value}",
                    field=f"preferences.weights.{name}",
                )
        if not any(values.values()):
            raise InvalidArgumentError(
                "preference weights are all zero", field="preferences.weights"
            )
        return "weights"
    return prefs.objective


def _check_names(catalog: Catalog, prefs: Preferences) -> None:
    for name in prefs.allowed:
        catalog.get(name)  # unknown names are an error, not silently skipped
    if prefs.pinned:
        if prefs.allowed and prefs.pinned not in prefs.allowed:
            raise InvalidArgumentError(
                f"pinned model {prefs.pinned!r} is not among allowed_models "
                f"{sorted(prefs.allowed)}",
                field="preferences.pinned_model",
            )
        catalog.get(prefs.pinned)
    if prefs.max_cost_nanousd < 0:
        raise InvalidArgumentError(
            f"max_cost must be >= 0, got {prefs.max_cost_nanousd}",
            field="preferences.max_cost_nanousd",
        )
    if prefs.deadline_s < 0:
        raise InvalidArgumentError(
            f"deadline must be >= 0, got {prefs.deadline_s} s", field="preferences.deadline"
        )


def _quality(
    model: ModelSpec,
    profile: ModelProfile | None,
    router: RouterAdvice | None,
    category: str,
    config: SelectionConfig,
) -> tuple[float, str]:
    if router is not None and model.name in router.predictions:
        return router.predictions[model.name], f"router:{router.version}"
    if profile is not None and profile.requests >= config.min_profile_requests:
        measured = profile.quality_by_category
        if category and category in measured:
            return measured[category], "profile"
        if "" in measured:
            return measured[""], "profile"
    return model.quality, "catalog"


def _latency(
    model: ModelSpec, profile: ModelProfile | None, output: int, config: SelectionConfig
) -> tuple[float, float]:
    if profile is not None and profile.requests >= config.min_profile_requests:
        typical = profile.ttft_p50_s + output * profile.time_per_output_token_p50_s
        bound = profile.ttft_p95_s + output * profile.time_per_output_token_p95_s
        return typical, max(typical, bound)
    prior = model.estimated_latency_s(output)
    return prior, prior


def _options(
    catalog: Catalog,
    prefs: Preferences,
    *,
    input_tokens: int,
    max_tokens: int | None,
    category: str,
    profiles: Mapping[str, ModelProfile],
    router: RouterAdvice | None,
    reference: ModelSpec,
    config: SelectionConfig,
) -> list[Option]:
    output = max_tokens or QUOTE_OUTPUT_TOKENS
    reference_cost = reference.price.cost_nanousd(input_tokens, output)
    options = []
    for model in catalog.models.values():
        cost = model.price.cost_nanousd(input_tokens, output)
        profile = profiles.get(model.name)
        typical, bound = _latency(model, profile, output, config)
        quality, source = _quality(model, profile, router, category, config)
        reasons = []
        fits = input_tokens + (max_tokens or 0) <= model.context_window
        if not model.available:
            reasons.append(f"not configured (set {model.api_key_env})")
        if prefs.allowed and model.name not in prefs.allowed:
            reasons.append("not in allowed_models")
        if not fits:
            reasons.append(f"prompt exceeds its {model.context_window}-token context window")
        if prefs.max_cost_nanousd and cost > prefs.max_cost_nanousd:
            reasons.append(
                f"estimated cost {cost} nano-USD is over max_cost {prefs.max_cost_nanousd}"
            )
        if prefs.deadline_s and bound > prefs.deadline_s:
            reasons.append(f"estimated {bound:.1f} s is past the {prefs.deadline_s:.1f} s deadline")
        if (
            profile is not None
            and profile.requests >= config.min_profile_requests
            and profile.error_rate > config.max_error_rate
        ):
            reasons.append(f"failing {profile.error_rate:.0%} of recent requests")
        options.append(
            Option(
                model=model,
                estimated_cost_nanousd=cost,
                estimated_latency_s=typical,
                latency_bound_s=bound,
                predicted_quality=quality,
                quality_source=source,
                within_constraints=not reasons,
                excluded_reason="; ".join(reasons),
                saved_vs_reference_nanousd=reference_cost - cost,
                context_fits=fits,
            )
        )
    options.sort(key=lambda o: (not o.model.available, o.estimated_cost_nanousd, o.model.name))
    return options


def _cheapest_first(options: Sequence[Option]) -> list[Option]:
    return sorted(options, key=lambda o: (o.estimated_cost_nanousd, -o.predicted_quality))


def _by_router(
    eligible: Sequence[Option], router: RouterAdvice, cascade: bool
) -> tuple[Option, str, bool] | None:
    candidates = _cheapest_first([o for o in eligible if o.model.name in router.predictions])
    if not candidates:
        return None
    label = f"{'cascade' if cascade else 'router'}:{router.version}"
    cheapest = candidates[0]
    if router.rule == "gain":
        return _by_gain(candidates, router, label)
    for option in candidates:
        if option.predicted_quality >= router.threshold:
            if option is cheapest:
                why = (
                    f"{label}: {option.model.name} predicted {option.predicted_quality:.2f} "
                    f">= threshold {router.threshold:.2f}, the cheapest that is"
                )
            else:
                why = (
                    f"{label}: low confidence in {cheapest.model.name} "
                    f"({cheapest.predicted_quality:.2f} < {router.threshold:.2f}); escalated to "
                    f"{option.model.name} ({option.predicted_quality:.2f})"
                )
            return option, why, option is not cheapest
    best = max(candidates, key=lambda o: (o.predicted_quality, -o.estimated_cost_nanousd))
    why = (
        f"{label}: no candidate reaches threshold {router.threshold:.2f}; "
        f"{best.model.name} is the most likely to be right ({best.predicted_quality:.2f})"
    )
    return best, why, best is not cheapest


def _by_gain(
    candidates: Sequence[Option], router: RouterAdvice, label: str
) -> tuple[Option, str, bool]:
    """Cheapest first; escalate while a stronger candidate's predicted gain beats the threshold."""
    current = candidates[0]
    steps = []
    for option in candidates[1:]:
        if option.estimated_cost_nanousd <= current.estimated_cost_nanousd:
            continue
        gain = option.predicted_quality - current.predicted_quality
        if gain > router.threshold:
            steps.append(
                f"{current.model.name} -> {option.model.name} (expected gain {gain:+.2f})"
            )
            current = option
    if not steps:
        return (
            current,
            f"{label}: {current.model.name} predicted {current.predicted_quality:.2f}; no "
            f"stronger model gains more than {router.threshold:+.2f}, the cheapest is kept",
            False,
        )
    why = f"{label}: escalated {'; '.join(steps)} > threshold {router.threshold:+.2f}"
    return current, why, True


def _by_preference(
    eligible: Sequence[Option], objective: str, weights: Weights | None, floor: float
) -> tuple[Option, str]:
    good = [o for o in eligible if o.predicted_quality >= floor]
    if objective == "cost":
        if good:
            pick = _cheapest_first(good)[0]
            return pick, f"cheapest model with predicted quality >= {floor:.2f}"
        pick = max(eligible, key=lambda o: (o.predicted_quality, -o.estimated_cost_nanousd))
        return pick, f"no model reaches quality {floor:.2f}; the best available"
    if objective == "quality":
        pick = max(eligible, key=lambda o: (o.predicted_quality, -o.estimated_cost_nanousd))
        return pick, f"highest predicted quality ({pick.predicted_quality:.2f})"
    if objective == "latency":
        pool = good or list(eligible)
        pick = min(pool, key=lambda o: (o.estimated_latency_s, o.estimated_cost_nanousd))
        floor_note = f" with quality >= {floor:.2f}" if good else ""
        return pick, f"fastest model{floor_note} (~{pick.estimated_latency_s:.2f} s)"
    w = weights or Weights(cost=1 / 3, latency=1 / 3, quality=1 / 3)
    top_cost = max(o.estimated_cost_nanousd for o in eligible) or 1
    top_latency = max(o.estimated_latency_s for o in eligible) or 1.0

    def score(o: Option) -> float:
        return (
            w.quality * o.predicted_quality
            + w.cost * (1 - o.estimated_cost_nanousd / top_cost)
            + w.latency * (1 - o.estimated_latency_s / top_latency)
        )

    pick = max(eligible, key=lambda o: (score(o), -o.estimated_cost_nanousd))
    return pick, (
        f"best weighted score {score(pick):.2f} (cost {w.cost:.2f}, latency {w.latency:.2f}, "
        f"quality {w.quality:.2f})"
    )


def select_model(
    catalog: Catalog,
    prefs: Preferences,
    *,
    input_tokens: int,
    max_tokens: int | None = None,
    task_category: str = "",
    profiles: Mapping[str, ModelProfile] | None = None,
    router: RouterAdvice | None = None,
    reference_model: str = "",
    config: SelectionConfig = SelectionConfig(),
) -> Selection:
    """Choose the model for one request (Ask and Quote both call this).

    Raises:
        NotFoundError: a pinned or allowed model is not in the catalog.
        InvalidArgumentError: contradictory preferences, bad weights, or constraints
            (``max_cost``, ``deadline``, context window) that no model can meet.
    """
    objective = _objective(prefs)
    _check_names(catalog, prefs)
    reference = catalog.models.get(reference_model) or catalog.models[catalog.reference_model]
    options = _options(
        catalog,
        prefs,
        input_tokens=input_tokens,
        max_tokens=max_tokens,
        category=task_category,
        profiles=profiles or {},
        router=None if prefs.pinned else router,
        reference=reference,
        config=config,
    )
    by_name = {o.model.name: o for o in options}

    def chosen(option: Option, policy: str, reason: str, escalated: bool = False) -> Selection:
        stronger = [
            o.model
            for o in _cheapest_first(eligible)
            if o.estimated_cost_nanousd > option.estimated_cost_nanousd
            and o.predicted_quality > option.predicted_quality
        ]
        return Selection(
            model=option.model,
            policy=policy,
            reason=reason,
            predicted_quality=option.predicted_quality,
            escalated=escalated,
            options=tuple(options),
            reference_model=reference.name,
            estimated_saved_nanousd=option.saved_vs_reference_nanousd,
            escalation=tuple(stronger),
        )

    eligible = [o for o in options if o.within_constraints]
    if prefs.pinned:
        # pinning bypasses selection (and its constraints): the caller asked for exactly it
        return chosen(by_name[prefs.pinned], "pinned", "pinned by the caller")
    if not eligible:
        reasons = "; ".join(
            f"{o.model.name}: {o.excluded_reason}" for o in options if o.model.available
        )
        raise NoEligibleModelError(
            f"no model meets this request's constraints ({reasons})", tuple(options)
        )
    if router is not None and objective in ("", "cost"):
        routed = _by_router(eligible, router, prefs.allow_cascade)
        if routed is not None:
            option, reason, escalated = routed
            label = "cascade" if prefs.allow_cascade else "router"
            return chosen(
                option,
                f"{label}:{router.version}",
                reason,
                escalated=escalated and prefs.allow_cascade,
            )
    if objective == "":
        default = _default(catalog, prefs, by_name)
        # an oversized prompt stays with the default: the request path then names the window
        too_long_only = (
            default is not None
            and not default.context_fits
            and (default.excluded_reason.count(";") == 0 and default.model.available)
        )
        if default is not None and (default.within_constraints or too_long_only):
            why = (
                "catalog default"
                if default.model.name == catalog.default_model
                else ("first allowed model")
            )
            return chosen(default, "default", why)
        objective = "cost"
    confidence = router is not None and router.rule == "confidence"
    floor = router.threshold if router is not None and confidence else config.min_quality
    option, reason = _by_preference(eligible, objective, prefs.weights, floor)
    return chosen(option, f"preference:{objective}", reason)


def _default(catalog: Catalog, prefs: Preferences, by_name: Mapping[str, Option]) -> Option | None:
    if not prefs.allowed or catalog.default_model in prefs.allowed:
        return by_name.get(catalog.default_model)
    return by_name.get(prefs.allowed[0])


#: an answer starting like this is the model saying it cannot answer
_GIVING_UP = (
    "i don't know",
    "i do not know",
    "i'm not sure",
    "i am not sure",
    "i cannot answer",
    "i can't answer",
    "i'm unable to",
    "i am unable to",
    "as an ai",
)


def answer_needs_escalation(answer: str, finish_reason: str) -> str:
    """Why a cheap model's answer should be escalated ("" when it looks usable).

    A cheap check, not a judge: an empty answer, one cut off by the length limit before it
    said much, or one that opens by giving up.
    """
    text = answer.strip()
    if not text:
        return "the answer was empty"
    if finish_reason == "length" and len(text) < 40:
        return "the answer was cut off almost at once"
    if text.lower().startswith(_GIVING_UP):
        return "the model said it could not answer"
    return ""
