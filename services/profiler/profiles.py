"""Model profiles learned from completions and feedback (pure: no I/O).

A profile holds, per model: requests and errors, the real money spent, latency
histograms (time to first token, time per output token, whole answer) and, per task
category, how many answers feedback called good. Histograms use fixed log-spaced
buckets (20 per decade, 1 ms .. 1000 s), so any number of replicas can add to one
profile and its percentiles stay within ~6% of the exact value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

__all__ = [
    "BUCKETS_PER_DECADE",
    "Completion",
    "FeedbackVerdict",
    "Profile",
    "apply_completion",
    "apply_completions",
    "apply_feedback",
    "percentile",
    "verdict_for",
]

BUCKETS_PER_DECADE = 20
_MIN_SECONDS = 1e-3
_MAX_BUCKET = 6 * BUCKETS_PER_DECADE  # 1000 s
#: every category's feedback counts here too
ALL_CATEGORIES = ""

Histogram = Mapping[int, int]


def bucket_of(seconds: float) -> int:
    if seconds <= _MIN_SECONDS:
        return 0
    index = math.floor(math.log10(seconds / _MIN_SECONDS) * BUCKETS_PER_DECADE) + 1
    return min(index, _MAX_BUCKET)


def _bucket_middle(index: int) -> float:
    if index == 0:
        return _MIN_SECONDS
    low = _MIN_SECONDS * 10 ** ((index - 1) / BUCKETS_PER_DECADE)
    high = _MIN_SECONDS * 10 ** (index / BUCKETS_PER_DECADE)
    return math.sqrt(low * high)


def percentile(histogram: Histogram, q: float) -> float:
    """The ``q``-th percentile (0..100) in seconds; 0.0 for an empty histogram."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return _bucket_middle(index)
    return _bucket_middle(max(histogram))


def _add(histogram: Histogram, seconds: float) -> dict[int, int]:
    out = dict(histogram)
    index = bucket_of(seconds)
    out[index] = out.get(index, 0) + 1
    return out


def histogram_to_json(histogram: Histogram) -> str:
    return json.dumps({str(k): v for k, v in sorted(histogram.items())})


def histogram_from_json(text: str) -> dict[int, int]:
    return {int(k): int(v) for k, v in json.loads(text or "{}").items()}


@dataclass(frozen=True, slots=True)
class Completion:
    """One answered (or failed) request, as the profiler needs it."""

    model: str
    provider: str
    error: bool
    cost_nanousd: int
    output_tokens: int
    latency_s: float | None
    ttft_s: float | None
    task_category: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    model: str
    provider: str = ""
    requests: int = 0
    errors: int = 0
    cost_nanousd_total: int = 0
    ttft: Histogram = field(default_factory=dict)
    time_per_output_token: Histogram = field(default_factory=dict)
    latency: Histogram = field(default_factory=dict)
    #: category -> (good, total)
    feedback: Mapping[str, tuple[float, int]] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_cost_nanousd(self) -> int:
        answered = self.requests - self.errors
        return round(self.cost_nanousd_total / answered) if answered > 0 else 0

    def quality_by_category(self) -> dict[str, float]:
        """Share of good answers per category, among the answers that got feedback."""
        return {c: good / total for c, (good, total) in self.feedback.items() if total}

    def feedback_counts(self) -> dict[str, int]:
        return {c: total for c, (_, total) in self.feedback.items()}


def apply_completion(profile: Profile, completion: Completion) -> Profile:
    """``profile`` with one more request counted (latency only from answers that came)."""
    ttft = profile.ttft
    per_token = profile.time_per_output_token
    latency = profile.latency
    if not completion.error:
        if completion.latency_s is not None and completion.latency_s > 0:
            latency = _add(latency, completion.latency_s)
        if completion.ttft_s is not None and completion.ttft_s > 0:
            ttft = _add(ttft, completion.ttft_s)
            generating = (completion.latency_s or 0.0) - completion.ttft_s
            if completion.output_tokens > 1 and generating > 0:
                per_token = _add(per_token, generating / (completion.output_tokens - 1))
    return replace(
        profile,
        provider=completion.provider or profile.provider,
        requests=profile.requests + 1,
        errors=profile.errors + int(completion.error),
        cost_nanousd_total=profile.cost_nanousd_total + max(0, completion.cost_nanousd),
        ttft=ttft,
        time_per_output_token=per_token,
        latency=latency,
    )


def apply_completions(profile: Profile, completions: Iterable[Completion]) -> Profile:
    """``profile`` with every completion counted: the same as :func:`apply_completion`
    one by one, but each histogram is copied once per batch rather than once per event."""
    ttft = dict(profile.ttft)
    per_token = dict(profile.time_per_output_token)
    latency = dict(profile.latency)
    provider = profile.provider
    requests, errors, cost = profile.requests, profile.errors, profile.cost_nanousd_total
    for completion in completions:
        provider = completion.provider or provider
        requests += 1
        errors += int(completion.error)
        cost += max(0, completion.cost_nanousd)
        if completion.error:
            continue
        if completion.latency_s is not None and completion.latency_s > 0:
            index = bucket_of(completion.latency_s)
            latency[index] = latency.get(index, 0) + 1
        if completion.ttft_s is not None and completion.ttft_s > 0:
            index = bucket_of(completion.ttft_s)
            ttft[index] = ttft.get(index, 0) + 1
            generating = (completion.latency_s or 0.0) - completion.ttft_s
            if completion.output_tokens > 1 and generating > 0:
                index = bucket_of(generating / (completion.output_tokens - 1))
                per_token[index] = per_token.get(index, 0) + 1
    return replace(
        profile,
        provider=provider,
        requests=requests,
        errors=errors,
        cost_nanousd_total=cost,
        ttft=ttft,
        time_per_output_token=per_token,
        latency=latency,
    )


@dataclass(frozen=True, slots=True)
class FeedbackVerdict:
    """How much one feedback event says the answer was good (0 bad .. 1 good)."""

    goodness: float


def verdict_for(kind: str, rating: int) -> FeedbackVerdict | None:
    """``kind`` is ``rating``, ``wrong`` or ``escalate``; None when it says nothing.

    Ratings map linearly: 1 -> 0.0, 3 -> 0.5, 5 -> 1.0. "Wrong" and "too weak" are bad.
    """
    if kind in ("wrong", "escalate"):
        return FeedbackVerdict(0.0)
    if kind == "rating" and 1 <= rating <= 5:
        return FeedbackVerdict((rating - 1) / 4)
    return None


def apply_feedback(profile: Profile, category: str, verdict: FeedbackVerdict) -> Profile:
    """``profile`` with one more judged answer in ``category`` (and in every-category)."""
    feedback = dict(profile.feedback)
    for key in {category, ALL_CATEGORIES}:
        good, total = feedback.get(key, (0.0, 0))
        feedback[key] = (good + verdict.goodness, total + 1)
    return replace(profile, feedback=feedback)


def feedback_to_json(feedback: Mapping[str, tuple[float, int]]) -> str:
    return json.dumps({k: [g, t] for k, (g, t) in sorted(feedback.items())})


def feedback_from_json(text: str) -> dict[str, tuple[float, int]]:
    return {k: (float(g), int(t)) for k, (g, t) in json.loads(text or "{}").items()}
