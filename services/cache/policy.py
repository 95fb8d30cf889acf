"""Per-request and per-app cache rules: mode, threshold bounds, TTL, what may be stored.

Pure: the caller passes what the request asked for and the app's configuration; these
functions return the decision or raise :class:`InvalidArgumentError`.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from datetime import timedelta

from llmproxy.cache.keys import PromptKind, classify_prompt
from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "AppPolicy",
    "LookupPlan",
    "Mode",
    "StoreLimits",
    "is_refusal",
    "plan_lookup",
    "resolve_ttl",
    "why_not_store",
]


class Mode(enum.Enum):
    OFF = "off"
    EXACT = "exact"
    SEMANTIC = "semantic"


@dataclass(frozen=True, slots=True)
class AppPolicy:
    """An app's cache configuration (the service default when the app has none)."""

    #: what an unspecified request mode means
    mode: Mode = Mode.SEMANTIC
    #: cosine similarity at or above which a guarded neighbour is a hit
    threshold: float = 0.9
    #: a request may ask for a stricter threshold, or a looser one down to this floor
    min_threshold: float = 0.8
    ttl: timedelta = timedelta(hours=24)
    max_ttl: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_threshold <= self.threshold <= 1.0:
            raise InvalidArgumentError(
                "cache thresholds need 0 <= min_threshold <= threshold <= 1",
                field="threshold",
            )
        if not timedelta(0) < self.ttl <= self.max_ttl:
            raise InvalidArgumentError("cache ttl needs 0 < ttl <= max_ttl", field="ttl")


@dataclass(frozen=True, slots=True)
class LookupPlan:
    mode: Mode
    threshold: float


def plan_lookup(mode: Mode | None, threshold: float, app: AppPolicy) -> LookupPlan:
    """The effective mode and threshold of one lookup.

    ``mode`` None means the app's default; ``threshold`` 0 means the app's. A threshold
    outside [0, 1] (or NaN) is an error; one below the app's floor is raised to the floor,
    so a caller can make matching stricter but never looser than the operator allowed.
    """
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        raise InvalidArgumentError(
            f"cache similarity_threshold must be within [0, 1], not {threshold}",
            field="policy.similarity_threshold",
        )
    effective = app.threshold if threshold == 0.0 else max(threshold, app.min_threshold)
    return LookupPlan(mode or app.mode, effective)


def resolve_ttl(requested: timedelta | None, app: AppPolicy) -> timedelta:
    """The requested TTL capped at the app's maximum; the app's TTL when none was asked."""
    if requested is None or requested == timedelta(0):
        return app.ttl
    if requested < timedelta(0):
        raise InvalidArgumentError(f"ttl must be positive, not {requested}", field="ttl")
    return min(requested, app.max_ttl)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    #: answers longer than this are not stored (the entry travels in one bus message)
    max_answer_chars: int = 64_000


#: opening words of a model declining to answer; a refusal is never worth repeating
_REFUSAL = re.compile(
    r"^\W*(?:"
    r"(?:i'?m|i am) (?:sorry|afraid)[,.]? (?:but )?(?:i |as an ai)"
    r"|sorry[,.]? (?:but )?i (?:can(?:no|')t|am unable|'m unable|won't)"
    r"|i (?:can(?:no|')t|am unable to|'m unable to|am not able to|'m not able to|won't) "
    r"(?:help|assist|provide|comply|answer|do that|fulfil|fulfill|support|create|generate)"
    r"|as an ai(?: language model)?,? i (?:can(?:no|')t|don't|do not|am unable|am not able)"
    r")",
    re.IGNORECASE,
)


def is_refusal(answer: str) -> bool:
    """True when the answer opens by declining the request."""
    return bool(_REFUSAL.match(answer[:300].replace("\u2019", "'")))


def why_not_store(
    *,
    mode: Mode,
    no_store: bool,
    prompt: str,
    answer: str,
    error: bool = False,
    finish_reason: str = "",
    limits: StoreLimits = StoreLimits(),
) -> str | None:
    """Why this answer must not be cached, or None when it may be."""
    if no_store:
        return "no_store requested"
    if mode is Mode.OFF:
        return "cache off for this request"
    if error:
        return "the request failed"
    kind = classify_prompt(prompt)
    if kind is PromptKind.EMPTY:
        return "empty prompt"
    if kind is PromptKind.BINARY:
        return "prompt is not text"
    if not answer.strip():
        return "empty answer"
    if finish_reason in ("length", "content_filter", "error"):
        return f"answer incomplete (finish_reason {finish_reason})"
    if len(answer) > limits.max_answer_chars:
        return f"answer longer than {limits.max_answer_chars} characters"
    if is_refusal(answer):
        return "the answer is a refusal"
    return None
