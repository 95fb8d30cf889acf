"""Reserving against limits on the request path: the store port, its fake, and the guard.

The decisions (which limits, does it fit, what the rejection says) are in ``limits.py``;
this module holds the I/O-facing parts: a :class:`LimitStore` applies claims atomically
(SQL in the product, :class:`InMemoryLimitStore` in unit tests), and :class:`LimitGuard`
caches each tenant's rules and turns a request's estimate into a :class:`Reservation`
that is settled exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from llmproxy.gateway.limits import Amounts, Claim, LimitRule, Who, fits, plan_claims, rejection

__all__ = ["InMemoryLimitStore", "LimitGuard", "LimitStore", "Reservation"]


class LimitStore(Protocol):
    """Where limits and their counters live."""

    async def rules_for(self, tenant_id: str) -> Sequence[LimitRule]:
        """Every limit of the tenant."""
        ...

    async def reserve(self, claims: Sequence[Claim], now: datetime) -> None:
        """Add every claim to its counter's ``reserved``, all or none.

        Raises LimitExceededError (from :func:`limits.rejection`) for the first claim that
        does not fit; then nothing is reserved.
        """
        ...

    async def settle(self, claims: Sequence[Claim], actual: Amounts) -> None:
        """Move each claim's amount out of ``reserved`` and the actual amount into ``used``."""
        ...


class Reservation:
    """What one request holds; :meth:`settle` once with what it really used."""

    def __init__(self, store: LimitStore, claims: tuple[Claim, ...]) -> None:
        self._store = store
        self.claims = claims
        self._settled = False

    @property
    def empty(self) -> bool:
        return not self.claims

    async def settle(self, actual: Amounts) -> None:
        """Idempotent: the first call counts, later ones do nothing."""
        if self._settled:
            return
        self._settled = True
        if self.claims:
            await self._store.settle(self.claims, actual)


class LimitGuard:
    """Reserves a request's estimate on the limits that apply to its caller.

    A tenant's rules are cached for ``rules_ttl_s`` (a new limit takes effect within that
    time); the counters themselves are never cached.
    """

    def __init__(
        self,
        store: LimitStore,
        *,
        rules_ttl_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = rules_ttl_s
        self._now = clock
        self._monotonic = monotonic
        self._rules: dict[str, tuple[float, tuple[LimitRule, ...]]] = {}

    async def rules_for(self, who: Who) -> tuple[LimitRule, ...]:
        """The limits that apply to ``who`` (cached per tenant)."""
        cached = self._rules.get(who.tenant_id)
        if cached is None or cached[0] <= self._monotonic():
            rules = tuple(await self._store.rules_for(who.tenant_id))
            cached = (self._monotonic() + self._ttl, rules)
            self._rules[who.tenant_id] = cached
        return tuple(r for r in cached[1] if r.applies_to(who))

    async def reserve(self, who: Who, estimate: Amounts) -> Reservation:
        """Reserve ``estimate``; raises LimitExceededError naming the limit that is full."""
        rules = await self.rules_for(who)
        if not rules:
            return Reservation(self._store, ())
        now = self._now()
        claims = plan_claims(rules, who, estimate, now)
        await self._store.reserve(claims, now)
        return Reservation(self._store, claims)


class InMemoryLimitStore:
    """The store in a dict, for unit tests. Atomic because it never awaits mid-update."""

    def __init__(self, rules: Sequence[LimitRule] = ()) -> None:
        self.rules = list(rules)
        #: (limit id, subject, window start) -> [used, reserved]
        self.counters: dict[tuple[str, str, datetime], list[int]] = {}

    async def rules_for(self, tenant_id: str) -> Sequence[LimitRule]:
        return [r for r in self.rules if r.tenant_id == tenant_id]

    async def reserve(self, claims: Sequence[Claim], now: datetime) -> None:
        for claim in claims:
            used, reserved = self.counters.get(_key(claim), [0, 0])
            if not fits(used, reserved, claim.amount, claim.rule.amount):
                raise rejection(claim, used, reserved, now)
        for claim in claims:
            self.counters.setdefault(_key(claim), [0, 0])[1] += claim.amount

    async def settle(self, claims: Sequence[Claim], actual: Amounts) -> None:
        for claim in claims:
            counter = self.counters[_key(claim)]
            counter[1] -= claim.amount
            counter[0] += actual.of(claim.rule.metric)


def _key(claim: Claim) -> tuple[str, str, datetime]:
    return claim.rule.id, claim.subject, claim.window_start
