"""Settling a reservation exactly once: retries after an ambiguous commit add nothing twice,
and a request whose gateway died after answering is counted from the usage ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from llmproxy.gateway.limits import Amounts, Claim, LimitRule, Who
from llmproxy.gateway.reservations import InMemoryLimitStore, LimitGuard

NOW = datetime(2026, 3, 4, 12, 0, 0, tzinfo=UTC)
WHO = Who("acme", "acme:web", "k1", "alice")
RULES = [
    LimitRule("cost", "acme", "cost_nanousd", "day", 10**9),
    LimitRule("reqs", "acme", "requests", "day", 100),
]
DAY = NOW.replace(hour=0)


def _used(store: InMemoryLimitStore) -> dict[str, list[int]]:
    return {key[0]: value for key, value in store.counters.items()}


class LostAcknowledgement(InMemoryLimitStore):
    """The settlement commits, then the connection breaks before the gateway hears so."""

    lose = 1

    async def settle(
        self, claims: Sequence[Claim], actual: Amounts, *, reservation_id: str
    ) -> None:
        await super().settle(claims, actual, reservation_id=reservation_id)
        if self.lose:
            self.lose -= 1
            raise ConnectionResetError("connection lost after COMMIT")


async def test_a_retry_after_an_ambiguous_commit_never_adds_used_twice() -> None:
    store = LostAcknowledgement(RULES)
    guard = LimitGuard(store, clock=lambda: NOW)
    reservation = await guard.reserve(WHO, Amounts(cost_nanousd=500, requests=1), request_id="r1")
    await reservation.settle(Amounts(cost_nanousd=300, requests=1))
    assert store.lose == 0  # it was retried
    assert _used(store) == {"cost": [300, 0], "reqs": [1, 0]}
    # and settling the same reservation again (another retry path) is a no-op as well
    await store.settle(reservation.claims, Amounts(cost_nanousd=300, requests=1),
                       reservation_id=reservation.id)  # fmt: skip
    assert _used(store) == {"cost": [300, 0], "reqs": [1, 0]}


async def test_a_dead_gateways_answered_request_is_counted_from_the_ledger_once() -> None:
    ledger: dict[str, Amounts] = {}
    store = InMemoryLimitStore(RULES, ledger=ledger)
    clock = [NOW]
    guard = LimitGuard(store, reservation_ttl_s=60, clock=lambda: clock[0])
    answered = await guard.reserve(WHO, Amounts(cost_nanousd=500, requests=1), request_id="r1")
    never_answered = await guard.reserve(WHO, Amounts(cost_nanousd=500, requests=1),
                                         request_id="r2")  # fmt: skip
    # r1 answered and its llm.completed reached the ledger; then its gateway was killed
    ledger["r1"] = Amounts(cost_nanousd=260, requests=1, tokens=19)
    assert _used(store) == {"cost": [0, 1000], "reqs": [0, 2]}
    clock[0] = NOW + timedelta(seconds=61)
    assert await guard.sweep() == 2
    assert _used(store) == {"cost": [260, 0], "reqs": [1, 0]}
    # a settlement that still arrives (a slow gateway, not a dead one) adds nothing more
    await answered.settle(Amounts(cost_nanousd=260, requests=1))
    await never_answered.settle(Amounts(requests=1))
    assert _used(store) == {"cost": [260, 0], "reqs": [1, 0]}
    assert await guard.sweep() == 0
