"""API keys and limits: the pure rules callers feel (who gets in, who is refused, and why)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from llmproxy.gateway.access import Authenticator
from llmproxy.gateway.keys import hash_secret, issue_key, parse_key, parse_scopes
from llmproxy.gateway.limits import (
    EACH_USER,
    Amounts,
    LimitExceededError,
    LimitRule,
    Who,
    plan_claims,
    window_bounds,
)
from llmproxy.gateway.reservations import InMemoryLimitStore, LimitGuard
from llmproxy.gateway.store import KeyRecord
from llmproxy.platform.errors import InvalidArgumentError, UnauthenticatedError

NOW = datetime(2025, 12, 31, 23, 59, 30, tzinfo=UTC)
WHO = Who("acme", "acme:web", "k1", "alice")


def _counter_bytes() -> object:
    counter = itertools.count()
    return lambda n: bytes((next(counter) + i) % 256 for i in range(n))


def test_a_key_is_stored_only_as_a_hash_and_parses_back() -> None:
    issued = issue_key(_counter_bytes())  # type: ignore[arg-type]
    key_id, secret = parse_key(issued.plaintext)
    assert key_id == issued.key_id and secret not in issued.secret_hash
    assert hash_secret(secret) == issued.secret_hash
    assert issue_key().plaintext != issue_key().plaintext
    for bad in ("", "sk-abc", "llp_short_x", issued.plaintext + "x"):
        with pytest.raises(UnauthenticatedError, match="invalid API key"):
            parse_key(bad)
    with pytest.raises(InvalidArgumentError, match="unknown scope"):
        parse_scopes(["chat", "admin"])


class _Directory:
    def __init__(self, record: KeyRecord) -> None:
        self.record, self.lookups = record, 0

    async def find_key(self, key_id: str) -> KeyRecord | None:
        self.lookups += 1
        return self.record if key_id == self.record.key_id else None


async def test_authentication_accepts_the_key_refuses_a_wrong_secret_and_a_revoked_key() -> None:
    issued = issue_key()
    record = KeyRecord(
        issued.key_id, "acme", "acme:web", issued.secret_hash, frozenset({"chat"}), False
    )
    directory = _Directory(record)
    clock = [0.0]
    auth = Authenticator(directory, cache_ttl_s=5, monotonic=lambda: clock[0])
    caller = await auth.authenticate(f"Bearer {issued.plaintext}")
    assert (caller.tenant_id, caller.app_id, caller.key_id) == ("acme", "acme:web", issued.key_id)
    await auth.authenticate(f"Bearer {issued.plaintext}")
    assert directory.lookups == 1  # the hot path reuses the verified row
    forged = issued.plaintext[:-4] + "AAAA"
    with pytest.raises(UnauthenticatedError, match="invalid API key"):
        await auth.authenticate(f"Bearer {forged}")
    with pytest.raises(UnauthenticatedError, match="missing API key"):
        await auth.authenticate(None)
    directory.record = KeyRecord(
        record.key_id, record.tenant_id, record.app_id, record.secret_hash, record.scopes, True
    )
    clock[0] = 6.0  # past the cache TTL: the revocation is seen
    with pytest.raises(UnauthenticatedError, match="revoked"):
        await auth.authenticate(f"Bearer {issued.plaintext}")


def test_windows_are_calendar_utc_and_a_month_rolls_into_the_next_year() -> None:
    assert window_bounds("minute", NOW) == (NOW.replace(second=0), datetime(2026, 1, 1, tzinfo=UTC))
    start, end = window_bounds("month", NOW)
    assert (start, end) == (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))


def test_limits_apply_by_scope_and_per_user_limits_count_each_user_apart() -> None:
    rules = [
        LimitRule("b", "acme", "requests", "minute", 5, user_id=EACH_USER),
        LimitRule("a", "acme", "cost_nanousd", "day", 100, app_id="acme:web"),
        LimitRule("c", "acme", "tokens", "hour", 9, app_id="acme:other"),
        LimitRule("d", "other", "requests", "day", 1),
    ]
    claims = plan_claims(rules, WHO, Amounts(cost_nanousd=7, requests=1, tokens=50), NOW)
    assert [(c.rule.id, c.subject, c.amount) for c in claims] == [("a", "", 7), ("b", "alice", 1)]
    anonymous_user = plan_claims(rules, Who("acme", "acme:web", "k1"), Amounts(requests=1), NOW)
    assert [c.rule.id for c in anonymous_user] == ["a"]


async def test_a_budget_admits_exactly_what_fits_under_concurrency_and_says_why_not() -> None:
    rule = LimitRule("lim_1", "acme", "cost_nanousd", "minute", 1000, app_id="acme:web")
    store = InMemoryLimitStore([rule])
    guard = LimitGuard(store, clock=lambda: NOW)

    async def one() -> object:
        try:
            return await guard.reserve(WHO, Amounts(cost_nanousd=100, requests=1))
        except LimitExceededError as exc:
            return exc

    outcomes = await asyncio.gather(*(one() for _ in range(200)))
    refused = [o for o in outcomes if isinstance(o, LimitExceededError)]
    assert len(outcomes) - len(refused) == 10
    error = refused[0]
    assert "the budget of app 'acme:web' ($0.000001 per minute) is used up" in error.message
    assert "lim_1" in error.message and "resets in 30 s" in error.message
    assert error.retry_after_seconds == 30 and error.code == "insufficient_quota"

    # settling with the real (smaller) cost frees the difference for later requests
    admitted = [o for o in outcomes if not isinstance(o, LimitExceededError)]
    for reservation in admitted:
        await reservation.settle(Amounts(cost_nanousd=40, requests=1))  # type: ignore[union-attr]
    assert store.counters[("lim_1", "", NOW.replace(second=0))] == [400, 0]
    await guard.reserve(WHO, Amounts(cost_nanousd=600))
    with pytest.raises(LimitExceededError):
        await guard.reserve(WHO, Amounts(cost_nanousd=1))


async def test_a_reservation_its_gateway_never_settled_is_released_after_its_ttl() -> None:
    rule = LimitRule("lim_1", "acme", "requests", "day", 3)
    store = InMemoryLimitStore([rule])
    t0 = NOW.replace(hour=1, minute=0, second=0)
    clock = [t0]
    guard = LimitGuard(store, reservation_ttl_s=60, clock=lambda: clock[0])
    day = ("lim_1", "", t0.replace(hour=0))
    crashed = await guard.reserve(WHO, Amounts(requests=2))  # its gateway dies: never settled
    clock[0] = t0.replace(second=30)
    live = await guard.reserve(WHO, Amounts(requests=1))
    with pytest.raises(LimitExceededError):
        await guard.reserve(WHO, Amounts(requests=1))
    assert await guard.sweep() == 0  # nothing has expired yet
    clock[0] = t0.replace(minute=1, second=1)
    assert await guard.sweep() == 1  # the crashed one only
    assert store.counters[day] == [0, 1]
    await guard.reserve(WHO, Amounts(requests=2))  # what it held is free again
    await live.settle(Amounts(requests=1))
    assert store.counters[day] == [1, 2]
    # a late settlement of a released reservation changes nothing: the sweeper counted it
    # (from the ledger, which has nothing for a request without an id)
    await crashed.settle(Amounts(requests=1))
    assert store.counters[day] == [1, 2]


async def test_a_settlement_the_database_refused_is_retried_until_it_lands() -> None:
    rule = LimitRule("lim_1", "acme", "requests", "day", 5)

    class Flaky(InMemoryLimitStore):
        failures = 2

        async def settle(self, claims, actual, *, reservation_id):  # type: ignore[no-untyped-def]
            if self.failures:
                self.failures -= 1
                raise ConnectionError("database away")
            await super().settle(claims, actual, reservation_id=reservation_id)

    store = Flaky([rule])
    guard = LimitGuard(store, clock=lambda: NOW)
    reservation = await guard.reserve(WHO, Amounts(requests=1))
    await reservation.settle(Amounts(requests=1))
    assert store.failures == 0
    assert store.counters[("lim_1", "", NOW.replace(hour=0, minute=0, second=0))] == [1, 0]
