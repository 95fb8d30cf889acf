"""Limit reservations in the real databases: exact admission under concurrency from two
gateways, and the release of reservations whose gateway died — once, whoever sweeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from llmproxy.gateway import admin
from llmproxy.gateway.limits import Amounts, LimitExceededError, Who
from llmproxy.gateway.reservations import LimitGuard, Reservation
from llmproxy.gateway.store import SqlLimitStore
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.db.models import LimitCounter, LimitReservation, UsageRecord

WHO = Who("acme", "acme:web", "k1", "alice")


async def _counter(sessions) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        row = (await session.execute(select(LimitCounter.used, LimitCounter.reserved))).one()
    return int(row[0]), int(row[1])


async def test_two_gateways_admit_exactly_the_budget_and_a_dead_ones_hold_expires(
    db_url: str,
) -> None:
    engines = [create_engine(db_url), create_engine(db_url)]
    try:
        sessions = [session_factory(e) for e in engines]
        await admin.create_tenant(sessions[0], "acme")
        await admin.set_limit(
            sessions[0], tenant="acme", metric="requests", window="day", amount=10
        )
        clock = [datetime.now(UTC)]
        guards = [
            LimitGuard(SqlLimitStore(s), reservation_ttl_s=60, clock=lambda: clock[0])
            for s in sessions
        ]

        async def one(i: int) -> Reservation | LimitExceededError:
            try:
                return await guards[i % 2].reserve(WHO, Amounts(requests=1))
            except LimitExceededError as exc:
                return exc

        outcomes = await asyncio.gather(*(one(i) for i in range(40)))
        admitted = [o for o in outcomes if isinstance(o, Reservation)]
        assert len(admitted) == 10
        assert all("is used up" in str(o) for o in outcomes if not isinstance(o, Reservation))
        assert await _counter(sessions[0]) == (0, 10)

        # gateway 0 settles its requests; gateway 1 dies holding the rest
        for r in admitted[:4]:
            await r.settle(Amounts(requests=1))
        assert await _counter(sessions[0]) == (4, 6)
        assert await guards[0].sweep() == 0  # nothing expired yet

        clock[0] += timedelta(seconds=61)
        released = await asyncio.gather(guards[0].sweep(), guards[1].sweep())
        assert sum(released) == 6  # each dead reservation released once, by either replica
        assert await _counter(sessions[0]) == (4, 0)
        async with sessions[0]() as session:
            assert await session.scalar(select(func.count()).select_from(LimitReservation)) == 0

        # a gateway that was only slow settles late: the sweeper already counted it (from
        # the ledger, empty here), so nothing moves twice
        await admitted[4].settle(Amounts(requests=1))
        assert await _counter(sessions[0]) == (4, 0)
        with pytest.raises(LimitExceededError):
            await guards[0].reserve(WHO, Amounts(requests=7))
        await guards[0].reserve(WHO, Amounts(requests=6))
    finally:
        for engine in engines:
            await engine.dispose()


async def test_settling_twice_counts_once_and_a_dead_gateways_answer_is_counted_from_the_ledger(
    db_url: str,
) -> None:
    engine = create_engine(db_url)
    try:
        sessions = session_factory(engine)
        await admin.create_tenant(sessions, "acme")
        await admin.set_limit(
            sessions, tenant="acme", metric="cost_nanousd", window="day", amount=10**9
        )
        clock = [datetime.now(UTC)]
        store = SqlLimitStore(sessions)
        guard = LimitGuard(store, reservation_ttl_s=60, clock=lambda: clock[0])
        settled = await guard.reserve(WHO, Amounts(cost_nanousd=500), request_id="req-settled")
        await settled.settle(Amounts(cost_nanousd=300))
        # the same settlement again, as a retry after a lost COMMIT acknowledgement would
        await store.settle(settled.claims, Amounts(cost_nanousd=300), reservation_id=settled.id)
        assert await _counter(sessions) == (300, 0)

        # a gateway answers (the profiler records it) and is killed before settling
        await guard.reserve(WHO, Amounts(cost_nanousd=500), request_id="req-orphan")
        await guard.reserve(WHO, Amounts(cost_nanousd=500), request_id="req-never-answered")
        async with sessions.begin() as session:
            session.add(
                UsageRecord(
                    event_id="ev-1", request_id="req-orphan", tenant_id="acme", app_id="acme:web",
                    provider="p", model="m", input_tokens=12, output_tokens=7, cost_nanousd=260,
                    cache_outcome="CACHE_OUTCOME_MISS", context_strategy="CONTEXT_STRATEGY_NONE",
                    tokens_sent=12, tokens_full_history=12, created_at=clock[0],
                )
            )  # fmt: skip
        assert await _counter(sessions) == (300, 1000)
        clock[0] += timedelta(seconds=61)
        assert await guard.sweep() == 2
        assert await _counter(sessions) == (560, 0)
    finally:
        await engine.dispose()
