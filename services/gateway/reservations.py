"""Reserving against limits on the request path: the store port, its fake, and the guard.

The decisions (which limits, does it fit, what the rejection says) are in ``limits.py``;
this module holds the I/O-facing parts: a :class:`LimitStore` applies claims atomically
(SQL in the product, :class:`InMemoryLimitStore` in unit tests), and :class:`LimitGuard`
caches each tenant's rules and turns a request's estimate into a :class:`Reservation`
that is settled exactly once — or, when the gateway holding it dies, released once its
time-to-live has passed (:meth:`LimitGuard.sweep`, run by every replica).

Exactly once, whoever gets there first: the reservation row is the token. A settlement
counts its amounts only if it removes the row itself, so a retry after a commit whose
acknowledgement was lost (the database went away mid-commit) adds nothing the second
time. A reservation its gateway never settled (killed after answering) is counted by the
sweeper from the usage ledger — the ``llm.completed`` rows of its request — when it
releases it, so spend equals the ledger's sum even across a gateway crash.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from llmproxy.gateway.limits import (
    Amounts,
    Claim,
    LimitExceededError,
    LimitRule,
    Who,
    fits,
    plan_claims,
    rejection,
)

__all__ = ["InMemoryLimitStore", "LimitGuard", "LimitStore", "Reservation"]


class LimitStore(Protocol):
    """Where limits and their counters live."""

    async def rules_for(self, tenant_id: str) -> Sequence[LimitRule]:
        """Every limit of the tenant."""
        ...

    async def reserve(
        self,
        claims: Sequence[Claim],
        now: datetime,
        *,
        reservation_id: str,
        expires_at: datetime,
        request_id: str = "",
    ) -> None:
        """Add every claim to its counter's ``reserved`` and record the reservation (with
        the request it is for), all or none.

        Raises LimitExceededError (from :func:`limits.rejection`) for the first claim that
        does not fit; then nothing is reserved.
        """
        ...

    async def settle(
        self, claims: Sequence[Claim], actual: Amounts, *, reservation_id: str
    ) -> None:
        """If the reservation is still open: remove it, take its claims out of
        ``reserved`` and add the actual amounts to ``used``, in one transaction. If it is
        gone — this settlement already landed (a retry), or the sweeper released it and
        counted the ledger's amounts — do nothing. Idempotent."""
        ...

    async def release_expired(self, now: datetime, *, batch: int = 100) -> int:
        """Release up to ``batch`` reservations whose ``expires_at`` has passed, adding to
        ``used`` what the usage ledger recorded for their request; how many."""
        ...


class Reservation:
    """What one request holds; :meth:`settle` once with what it really used."""

    def __init__(self, store: LimitStore, claims: tuple[Claim, ...], id: str = "") -> None:
        self._store = store
        self.claims = claims
        self.id = id
        self._settled = False

    @property
    def empty(self) -> bool:
        return not self.claims

    async def settle(self, actual: Amounts, *, retry_for_s: float = 300.0) -> None:
        """Idempotent: the first call counts, later ones do nothing.

        The settlement is one idempotent transaction (keyed by the reservation id); while
        the database is away it is retried with backoff for ``retry_for_s`` (an answered
        request's spend must reach the counters, not only the ledger) — a retry after an
        ambiguous commit never adds ``used`` twice. Past that, the sweeper releases the
        hold after its TTL and counts what the ledger recorded.
        """
        if self._settled:
            return
        self._settled = True
        if not self.claims:
            return
        delay, waited = 0.25, 0.0
        while True:
            try:
                await self._store.settle(self.claims, actual, reservation_id=self.id)
                return
            except LimitExceededError:
                raise
            except Exception:
                if waited >= retry_for_s:
                    raise
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)


class LimitGuard:
    """Reserves a request's estimate on the limits that apply to its caller.

    A tenant's rules are cached for ``rules_ttl_s`` (a new limit takes effect within that
    time); the counters themselves are never cached. A reservation not settled within
    ``reservation_ttl_s`` (its gateway died) is released by :meth:`sweep`; the TTL must be
    longer than any request can take.
    """

    def __init__(
        self,
        store: LimitStore,
        *,
        rules_ttl_s: float = 5.0,
        reservation_ttl_s: float = 900.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = rules_ttl_s
        self._hold = timedelta(seconds=reservation_ttl_s)
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

    async def reserve(self, who: Who, estimate: Amounts, *, request_id: str = "") -> Reservation:
        """Reserve ``estimate``; raises LimitExceededError naming the limit that is full.

        ``request_id`` (the id of its ``llm.completed`` event) lets the sweeper count what
        the ledger recorded if the gateway dies before settling.
        """
        rules = await self.rules_for(who)
        if not rules:
            return Reservation(self._store, ())
        now = self._now()
        claims = plan_claims(rules, who, estimate, now)
        reservation_id = uuid.uuid4().hex
        await self._store.reserve(
            claims,
            now,
            reservation_id=reservation_id,
            expires_at=now + self._hold,
            request_id=request_id,
        )
        return Reservation(self._store, claims, reservation_id)

    async def sweep(self) -> int:
        """Release every reservation past its TTL (in batches); how many were released."""
        released = 0
        while count := await self._store.release_expired(self._now()):
            released += count
        return released


class InMemoryLimitStore:
    """The store in a dict, for unit tests. Atomic because it never awaits mid-update.

    ``ledger`` stands in for the usage ledger: request id -> what was recorded for it.
    """

    def __init__(
        self, rules: Sequence[LimitRule] = (), ledger: dict[str, Amounts] | None = None
    ) -> None:
        self.rules = list(rules)
        self.ledger: dict[str, Amounts] = ledger if ledger is not None else {}
        #: (limit id, subject, window start) -> [used, reserved]
        self.counters: dict[tuple[str, str, datetime], list[int]] = {}
        #: open reservations: id -> (claims, expires_at, request id)
        self.open: dict[str, tuple[tuple[Claim, ...], datetime, str]] = {}

    async def rules_for(self, tenant_id: str) -> Sequence[LimitRule]:
        return [r for r in self.rules if r.tenant_id == tenant_id]

    async def reserve(
        self,
        claims: Sequence[Claim],
        now: datetime,
        *,
        reservation_id: str,
        expires_at: datetime,
        request_id: str = "",
    ) -> None:
        for claim in claims:
            used, reserved = self.counters.get(_key(claim), [0, 0])
            if not fits(used, reserved, claim.amount, claim.rule.amount):
                raise rejection(claim, used, reserved, now)
        for claim in claims:
            self.counters.setdefault(_key(claim), [0, 0])[1] += claim.amount
        self.open[reservation_id] = (tuple(claims), expires_at, request_id)

    async def settle(
        self, claims: Sequence[Claim], actual: Amounts, *, reservation_id: str
    ) -> None:
        if self.open.pop(reservation_id, None) is None:
            return  # settled already, or released (and counted) by the sweeper
        for claim in claims:
            counter = self.counters[_key(claim)]
            counter[1] -= claim.amount
            counter[0] += actual.of(claim.rule.metric)

    async def release_expired(self, now: datetime, *, batch: int = 100) -> int:
        expired = [rid for rid, (_, until, _) in self.open.items() if until <= now][:batch]
        for rid in expired:
            claims, _, request_id = self.open.pop(rid)
            recorded = self.ledger.get(request_id, Amounts()) if request_id else Amounts()
            for claim in claims:
                counter = self.counters[_key(claim)]
                counter[1] -= claim.amount
                counter[0] += recorded.of(claim.rule.metric)
        return len(expired)


def _key(claim: Claim) -> tuple[str, str, datetime]:
    return claim.rule.id, claim.subject, claim.window_start
