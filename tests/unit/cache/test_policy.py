"""Per-request control: modes, threshold bounds, TTL caps, what is never stored."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmproxy.cache.policy import (
    AppPolicy,
    Mode,
    is_refusal,
    plan_lookup,
    resolve_ttl,
    why_not_store,
)
from llmproxy.platform.errors import InvalidArgumentError

APP = AppPolicy(threshold=0.9, min_threshold=0.8)


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), 7.0])
def test_thresholds_outside_0_1_are_invalid(bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match="similarity_threshold"):
        plan_lookup(Mode.SEMANTIC, bad, APP)


def test_a_request_may_tighten_but_not_loosen_past_the_floor() -> None:
    assert plan_lookup(None, 0.0, APP) == plan_lookup(Mode.SEMANTIC, 0.9, APP)
    assert plan_lookup(Mode.SEMANTIC, 0.97, APP).threshold == 0.97
    assert plan_lookup(Mode.SEMANTIC, 0.3, APP).threshold == 0.8
    assert plan_lookup(Mode.EXACT, 0.0, APP).mode is Mode.EXACT


def test_ttl_is_capped_by_the_app() -> None:
    assert resolve_ttl(None, APP) == APP.ttl
    assert resolve_ttl(timedelta(days=400), APP) == APP.max_ttl
    assert resolve_ttl(timedelta(minutes=5), APP) == timedelta(minutes=5)


@pytest.mark.parametrize(
    "answer",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot assist with this request.",
        "As an AI language model, I cannot provide medical advice.",
        "Sorry, I can't do that.",
    ],
)
def test_refusals_are_recognised(answer: str) -> None:
    assert is_refusal(answer)
    assert why_not_store(mode=Mode.SEMANTIC, no_store=False, prompt="q", answer=answer)


def test_ordinary_answers_are_not_refusals() -> None:
    assert not is_refusal("I can help: open Settings, then Display.")
    assert not is_refusal("Sorry to hear that! Restart the router first.")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"no_store": True}, "no_store"),
        ({"mode": Mode.OFF}, "cache off"),
        ({"error": True}, "failed"),
        ({"prompt": "  "}, "empty prompt"),
        ({"prompt": "\x00\x01\x02\x03"}, "not text"),
        ({"answer": ""}, "empty answer"),
        ({"finish_reason": "length"}, "incomplete"),
        ({"answer": "x" * 70_000}, "longer than"),
    ],
)
def test_what_is_never_stored(overrides: dict[str, object], reason: str) -> None:
    values: dict[str, object] = {
        "mode": Mode.SEMANTIC,
        "no_store": False,
        "prompt": "How do I reset my password?",
        "answer": "Open Settings, then Security.",
    }
    assert why_not_store(**values) is None  # type: ignore[arg-type]
    assert reason in (why_not_store(**(values | overrides)) or "")  # type: ignore[arg-type]
