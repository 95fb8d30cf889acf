"""Budgets and rate limits: windows, which limits apply, admission and settlement. Pure.

A limit allows at most ``amount`` of one metric (nano-USD spent, requests, tokens) per
fixed calendar window (minute, hour, day, month, in UTC) to a tenant, an app, a key, or
end users. A request first *reserves* its estimate on every limit that applies; it is
admitted only if, for each, ``used + reserved + estimate <= amount`` — checked and applied
atomically by the store. After the answer the reservation is *settled*: the estimate
leaves ``reserved`` and the real amount joins ``used``. A failed request settles with
what it really cost (nothing, for money). Because the estimate bounds the real cost, the
limit holds however many requests run at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from llmproxy.platform.errors import InvalidArgumentError, RateLimitedError

__all__ = [
    "METRICS",
    "WINDOWS",
    "Amounts",
    "Claim",
    "LimitExceededError",
    "LimitRule",
    "Who",
    "fits",
    "plan_claims",
    "rejection",
    "validate_rule",
    "window_bounds",
]

METRIC_COST = "cost_nanousd"
METRIC_REQUESTS = "requests"
METRIC_TOKENS = "tokens"
METRICS = (METRIC_COST, METRIC_REQUESTS, METRIC_TOKENS)
WINDOWS = ("minute", "hour", "day", "month")
#: a per-user limit with this user_id applies to each end user separately
EACH_USER = "*"


@dataclass(frozen=True, slots=True)
class Who:
    """The caller as limits see it (from the API key, plus the end user from the request)."""

    tenant_id: str
    app_id: str
    key_id: str
    user_id: str = ""


@dataclass(frozen=True, slots=True)
class Amounts:
    """How much of each metric a request needs (estimate) or used (actual)."""

    cost_nanousd: int = 0
    requests: int = 0
    tokens: int = 0

    def of(self, metric: str) -> int:
        return int(getattr(self, metric))


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One configured limit. Unset ``app_id`` / ``key_id`` / ``user_id`` mean "any"."""

    id: str
    tenant_id: str
    metric: str
    window: str
    amount: int
    app_id: str | None = None
    key_id: str | None = None
    #: one end user, or :data:`EACH_USER` for every end user separately
    user_id: str | None = None

    def applies_to(self, who: Who) -> bool:
        if who.tenant_id != self.tenant_id:
            return False
        if self.app_id is not None and self.app_id != who.app_id:
            return False
        if self.key_id is not None and self.key_id != who.key_id:
            return False
        if self.user_id is None:
            return True
        # requests without an end user are not subject to per-user limits
        return bool(who.user_id) and self.user_id in (EACH_USER, who.user_id)

    def subject_of(self, who: Who) -> str:
        """The counter a caller draws from: per end user for per-user limits."""
        return who.user_id if self.user_id is not None else ""

    def describe(self) -> str:
        """E.g. "the budget of app 'support' ($1.000000 per day)"."""
        if self.user_id == EACH_USER:
            owner = "each end user"
        elif self.user_id is not None:
            owner = f"end user {self.user_id!r}"
        elif self.key_id is not None:
            owner = f"key {self.key_id!r}"
        elif self.app_id is not None:
            owner = f"app {self.app_id!r}"
        else:
            owner = f"tenant {self.tenant_id!r}"
        kind = "budget" if self.metric == METRIC_COST else f"{self.metric} limit"
        return (
            f"the {kind} of {owner} ({format_amount(self.metric, self.amount)} per {self.window})"
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """A reservation of ``amount`` on one limit's counter for one window."""

    rule: LimitRule
    subject: str
    window_start: datetime
    window_end: datetime
    amount: int


class LimitExceededError(RateLimitedError):
    """A request would take a limit past its amount. Says which, how full, and when it resets."""

    def __init__(
        self, message: str, *, rule: LimitRule, current: int, resets_at: datetime, now: datetime
    ) -> None:
        super().__init__(message, retry_after_seconds=max(1.0, (resets_at - now).total_seconds()))
        self.rule = rule
        self.current = current
        self.resets_at = resets_at
        # OpenAI's error type for money is insufficient_quota; for rates rate_limit_exceeded
        self.code = "insufficient_quota" if rule.metric == METRIC_COST else "rate_limit_exceeded"


def format_amount(metric: str, value: int) -> str:
    if metric == METRIC_COST:
        return f"${Decimal(value) / Decimal(1_000_000_000):.6f}"
    return f"{value} {metric}"


def validate_rule(rule: LimitRule) -> None:
    """InvalidArgumentError naming the first bad field of a limit."""
    if rule.metric not in METRICS:
        raise InvalidArgumentError(
            f"metric must be one of {list(METRICS)}, got {rule.metric!r}", field="metric"
        )
    if rule.window not in WINDOWS:
        raise InvalidArgumentError(
            f"window must be one of {list(WINDOWS)}, got {rule.window!r}", field="window"
        )
    if rule.amount < 0:
        raise InvalidArgumentError(f"amount must be >= 0, got {rule.amount}", field="amount")


def window_bounds(window: str, now: datetime) -> tuple[datetime, datetime]:
    """The fixed UTC window holding ``now``: [start, end)."""
    now = now.astimezone(UTC)
    if window == "minute":
        start = now.replace(second=0, microsecond=0)
        return start, start + timedelta(minutes=1)
    if window == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    if window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    if window == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return start, end
    raise InvalidArgumentError(f"unknown window {window!r}", field="window")


def plan_claims(
    rules: Iterable[LimitRule], who: Who, estimate: Amounts, now: datetime
) -> tuple[Claim, ...]:
    """The claims a request must win to be admitted, in a fixed order.

    The order (by limit id, subject, window) is the same for every request, so stores that
    lock rows one after another never deadlock.
    """
    claims = []
    for rule in rules:
        if not rule.applies_to(who):
            continue
        start, end = window_bounds(rule.window, now)
        claims.append(Claim(rule, rule.subject_of(who), start, end, estimate.of(rule.metric)))
    return tuple(sorted(claims, key=lambda c: (c.rule.id, c.subject, c.window_start)))


def fits(used: int, reserved: int, amount: int, limit: int) -> bool:
    """Admission: the counter stays within the limit even if every reservation is spent."""
    return used + reserved + amount <= limit


def rejection(claim: Claim, used: int, reserved: int, now: datetime) -> LimitExceededError:
    """The error a caller sees when ``claim`` does not fit."""
    metric = claim.rule.metric
    seconds = max(1, int((claim.window_end - now).total_seconds() + 0.999))
    return LimitExceededError(
        f"{claim.rule.describe()} is used up: {format_amount(metric, used + reserved)} used or "
        f"reserved, this request needs up to {format_amount(metric, claim.amount)}; resets in "
        f"{seconds} s at {claim.window_end.strftime('%Y-%m-%dT%H:%M:%SZ')} (limit {claim.rule.id})",
        rule=claim.rule,
        current=used + reserved,
        resets_at=claim.window_end,
        now=now,
    )
