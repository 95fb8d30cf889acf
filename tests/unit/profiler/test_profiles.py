"""The profile core: latency percentiles, cost, error rate and quality from feedback."""

from __future__ import annotations

import numpy as np
import pytest

from llmproxy.profiler.profiles import (
    Completion,
    Profile,
    apply_completion,
    apply_feedback,
    feedback_from_json,
    feedback_to_json,
    histogram_from_json,
    histogram_to_json,
    percentile,
    verdict_for,
)


def completion(**overrides) -> Completion:  # type: ignore[no-untyped-def]
    values = dict(
        model="m",
        provider="p",
        error=False,
        cost_nanousd=1_000,
        output_tokens=101,
        latency_s=1.2,
        ttft_s=0.2,
    )
    values.update(overrides)
    return Completion(**values)  # type: ignore[arg-type]


def test_percentiles_of_many_requests_are_within_a_bucket_of_the_exact_value() -> None:
    rng = np.random.default_rng(1)
    ttfts = rng.lognormal(mean=np.log(0.3), sigma=0.5, size=2000)
    profile = Profile("m")
    for ttft in ttfts:
        profile = apply_completion(profile, completion(ttft_s=float(ttft), latency_s=ttft + 1.0))
    for q in (50, 95, 99):
        exact = float(np.percentile(ttfts, q))
        assert percentile(profile.ttft, q) == pytest.approx(exact, rel=0.08)
    # time per output token: (latency - ttft) / (tokens - 1) = 1.0 / 100
    assert percentile(profile.time_per_output_token, 50) == pytest.approx(0.01, rel=0.08)
    assert percentile({}, 50) == 0.0


def test_errors_count_in_the_error_rate_but_not_in_latency_or_mean_cost() -> None:
    profile = Profile("m")
    for _ in range(3):
        profile = apply_completion(profile, completion(cost_nanousd=3_000))
    profile = apply_completion(profile, completion(error=True, cost_nanousd=0, latency_s=60.0))
    assert (profile.requests, profile.errors) == (4, 1)
    assert profile.error_rate == pytest.approx(0.25)
    assert profile.mean_cost_nanousd == 3_000  # per answered request
    assert sum(profile.latency.values()) == 3  # the 60 s failure is not a latency


def test_feedback_gives_quality_per_category_and_overall() -> None:
    profile = Profile("m")
    for kind, rating, category in [
        ("rating", 5, "math"),
        ("wrong", 0, "math"),
        ("rating", 5, "chat"),
        ("rating", 3, "chat"),
        ("escalate", 0, "chat"),
    ]:
        verdict = verdict_for(kind, rating)
        assert verdict is not None
        profile = apply_feedback(profile, category, verdict)
    quality = profile.quality_by_category()
    assert quality["math"] == pytest.approx(0.5)
    assert quality["chat"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert quality[""] == pytest.approx(2.5 / 5)
    assert profile.feedback_counts() == {"math": 2, "chat": 3, "": 5}


def test_feedback_that_says_nothing_about_quality_is_ignored() -> None:
    assert verdict_for("rating", 0) is None
    assert verdict_for("rating", 9) is None
    assert verdict_for("", 0) is None


def test_profiles_survive_their_storage_form() -> None:
    histogram = {0: 1, 17: 4, 120: 2}
    assert histogram_from_json(histogram_to_json(histogram)) == histogram
    feedback = {"": (1.5, 3), "math": (0.0, 1)}
    assert feedback_from_json(feedback_to_json(feedback)) == feedback
