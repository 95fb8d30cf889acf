"""Each selection policy's choice on a constructed catalog and constructed profiles."""

from __future__ import annotations

import pytest

from llmproxy.gateway.catalog import Catalog, parse_catalog
from llmproxy.gateway.selection import (
    ModelProfile,
    Preferences,
    RouterAdvice,
    Weights,
    answer_needs_escalation,
    select_model,
)
from llmproxy.platform.errors import InvalidArgumentError, NotFoundError


def make_catalog(**extra: dict) -> Catalog:
    """tiny < small < large in price and quality; large is the reference."""
    models = [
        {
            "name": "tiny",
            "quality": 0.3,
            "first_token_ms": 100,
            "output_tokens_per_s": 200,
            "price_per_million": {"input": 0.05, "output": 0.1},
        },
        {
            "name": "small",
            "quality": 0.75,
            "first_token_ms": 300,
            "output_tokens_per_s": 100,
            "price_per_million": {"input": 0.15, "output": 0.6},
        },
        {
            "name": "large",
            "quality": 0.9,
            "first_token_ms": 800,
            "output_tokens_per_s": 40,
            "price_per_million": {"input": 2.5, "output": 10},
        },
    ]
    for model in models:
        model.update(extra.get(model["name"], {}))
    return parse_catalog(
        {"default_model": "tiny", "reference_model": "large", "models": models}, environ={}
    )


CATALOG = make_catalog()


def choose(prefs: Preferences | None = None, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("input_tokens", 100)
    kwargs.setdefault("max_tokens", 100)
    return select_model(CATALOG, prefs or Preferences(), **kwargs)


def test_no_objective_and_no_router_keeps_the_catalog_default() -> None:
    selection = choose()
    assert (selection.model.name, selection.policy) == ("tiny", "default")


def test_cost_objective_takes_the_cheapest_model_that_meets_the_quality_floor() -> None:
    selection = choose(Preferences(objective="cost"))
    # tiny is cheaper but its quality (0.3) is under the 0.7 floor
    assert (selection.model.name, selection.policy) == ("small", "preference:cost")
    assert selection.predicted_quality == pytest.approx(0.75)
    assert "cheapest" in selection.reason


def test_measured_quality_from_profiles_replaces_the_catalog_prior() -> None:
    profiles = {
        "tiny": ModelProfile("tiny", requests=50, quality_by_category={"": 0.8, "math": 0.2}),
        "small": ModelProfile("small", requests=50, quality_by_category={"": 0.9}),
    }
    chat = choose(Preferences(objective="cost"), profiles=profiles)
    assert chat.model.name == "tiny" and chat.predicted_quality == pytest.approx(0.8)
    # in the category where tiny is weak, the cost objective moves up
    math = choose(Preferences(objective="cost"), profiles=profiles, task_category="math")
    assert math.model.name == "small"
    # too few requests: the prior stands
    thin = {"tiny": ModelProfile("tiny", requests=2, quality_by_category={"": 0.99})}
    assert choose(Preferences(objective="cost"), profiles=thin).model.name == "small"


def test_quality_objective_takes_the_most_likely_to_be_right() -> None:
    selection = choose(Preferences(objective="quality"))
    assert (selection.model.name, selection.policy) == ("large", "preference:quality")


def test_latency_objective_takes_the_fastest_model_meeting_the_floor() -> None:
    assert choose(Preferences(objective="latency")).model.name == "small"
    profiles = {"large": ModelProfile("large", requests=10, ttft_p50_s=0.05, ttft_p95_s=0.1)}
    assert choose(Preferences(objective="latency"), profiles=profiles).model.name == "large"


def test_weights_trade_cost_against_quality() -> None:
    cheap = choose(Preferences(weights=Weights(cost=1.0, latency=0.0, quality=0.0)))
    good = choose(Preferences(weights=Weights(cost=0.0, latency=0.0, quality=1.0)))
    assert (cheap.model.name, good.model.name) == ("tiny", "large")
    assert cheap.policy == "preference:weights"


def test_deadline_rules_out_slow_models() -> None:
    # large: 0.8 s + 100 tokens / 40 per s = 3.3 s
    selection = choose(Preferences(objective="quality", deadline_s=2.0))
    assert selection.model.name == "small"
    large = next(o for o in selection.options if o.model.name == "large")
    assert not large.within_constraints and "deadline" in large.excluded_reason
    # the profile's p95, not its median, is held against the deadline
    profiles = {
        "small": ModelProfile(
            "small",
            requests=20,
            ttft_p50_s=0.2,
            ttft_p95_s=2.5,
            time_per_output_token_p50_s=0.001,
            time_per_output_token_p95_s=0.002,
        )
    }
    slow_tail = choose(Preferences(objective="quality", deadline_s=2.0), profiles=profiles)
    assert slow_tail.model.name == "tiny"


def test_budget_rules_out_expensive_models() -> None:
    # per 1M tokens: large 100*2.5 + 100*10 = 1,250,000 nano-USD here; small 75,000
    selection = choose(Preferences(objective="quality", max_cost_nanousd=100_000))
    assert selection.model.name == "small"
    large = next(o for o in selection.options if o.model.name == "large")
    assert "over max_cost" in large.excluded_reason


def test_a_model_that_keeps_failing_is_left_out() -> None:
    profiles = {"small": ModelProfile("small", requests=20, error_rate=0.8)}
    selection = choose(Preferences(objective="cost"), profiles=profiles)
    assert selection.model.name == "large"
    small = next(o for o in selection.options if o.model.name == "small")
    assert "failing 80%" in small.excluded_reason


def test_constraints_no_model_can_meet_are_refused_with_each_reason() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        choose(Preferences(max_cost_nanousd=1))
    assert "no model meets" in caught.value.message
    assert "tiny: estimated cost" in caught.value.message


def test_pinning_wins_over_every_policy_and_constraint() -> None:
    router = RouterAdvice("v1", 0.7, {"tiny": 0.99, "small": 0.99, "large": 0.99})
    selection = choose(
        Preferences(pinned="large", objective="cost", max_cost_nanousd=1), router=router
    )
    assert (selection.model.name, selection.policy) == ("large", "pinned")
    # a pinned request never uses the router's prediction
    assert selection.predicted_quality == pytest.approx(0.9)


def test_bad_preferences_are_named() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown objective"):
        choose(Preferences(objective="cheapest"))
    with pytest.raises(InvalidArgumentError, match="weight quality"):
        choose(Preferences(weights=Weights(cost=0.5, latency=0.5, quality=2.0)))
    with pytest.raises(InvalidArgumentError, match="all zero"):
        choose(Preferences(weights=Weights(0, 0, 0)))
    with pytest.raises(InvalidArgumentError, match="not among allowed_models"):
        choose(Preferences(pinned="large", allowed=("tiny",)))
    with pytest.raises(NotFoundError, match="unknown model"):
        choose(Preferences(allowed=("gpt-9",)))


def test_allowed_models_limit_every_policy() -> None:
    assert choose(Preferences(objective="quality", allowed=("tiny", "small"))).model.name == (
        "small"
    )
    assert choose(Preferences(allowed=("small", "large"))).model.name == "small"


def test_router_takes_the_cheapest_candidate_it_is_confident_in() -> None:
    router = RouterAdvice("v3", 0.7, {"tiny": 0.8, "small": 0.9, "large": 0.95})
    selection = choose(router=router)
    assert (selection.model.name, selection.policy) == ("tiny", "router:v3")
    assert selection.predicted_quality == pytest.approx(0.8)
    assert not selection.escalated
    # the saving against the reference model is estimated before the call
    tiny = next(o for o in selection.options if o.model.name == "tiny")
    assert selection.estimated_saved_nanousd == tiny.saved_vs_reference_nanousd > 0
    assert selection.reference_model == "large"


def test_cascade_escalates_when_the_router_is_not_confident_in_the_cheap_model() -> None:
    router = RouterAdvice("v3", 0.7, {"tiny": 0.4, "small": 0.65, "large": 0.85})
    selection = choose(Preferences(allow_cascade=True), router=router)
    assert (selection.model.name, selection.policy) == ("large", "cascade:v3")
    assert selection.escalated
    assert "low confidence in tiny" in selection.reason and "escalated to large" in selection.reason
    # confident in the cheap one: no escalation, and the stronger models stay next in line
    sure = choose(
        Preferences(allow_cascade=True),
        router=RouterAdvice("v3", 0.7, {"tiny": 0.9, "small": 0.95, "large": 0.97}),
    )
    assert (sure.model.name, sure.escalated) == ("tiny", False)
    assert [m.name for m in sure.escalation] == ["small", "large"]


def test_router_with_no_confident_candidate_takes_the_most_likely_one() -> None:
    router = RouterAdvice("v3", 0.9, {"tiny": 0.4, "small": 0.7, "large": 0.6})
    assert choose(router=router).model.name == "small"


def test_router_respects_budget_and_deadline() -> None:
    router = RouterAdvice("v3", 0.7, {"tiny": 0.2, "small": 0.3, "large": 0.95})
    capped = choose(Preferences(max_cost_nanousd=1_000_000), router=router)
    assert capped.model.name == "small"  # large would be right, but is over the budget


def test_quote_and_ask_see_the_same_choice_for_the_same_inputs() -> None:
    router = RouterAdvice("v3", 0.7, {"tiny": 0.4, "small": 0.8, "large": 0.9})
    first = choose(Preferences(allow_cascade=True), router=router)
    second = choose(Preferences(allow_cascade=True), router=router)
    assert first == second
    names = [o.model.name for o in first.options]
    assert names == ["tiny", "small", "large"]  # cheapest first


@pytest.mark.parametrize(
    ("answer", "finish", "escalate"),
    [
        ("", "stop", True),
        ("  ", "stop", True),
        ("Paris", "length", True),
        ("I don't know the answer to that.", "stop", True),
        ("The capital of France is Paris.", "stop", False),
        ("A long answer " * 10, "length", False),
    ],
)
def test_cheap_answer_check(answer: str, finish: str, escalate: bool) -> None:
    assert bool(answer_needs_escalation(answer, finish)) is escalate
