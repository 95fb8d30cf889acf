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
from llmproxy.platform.db.models import LimitCounter, LimitReservation

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

        # a gateway that was only slow settles late: its use counts, its hold is not freed twice
        await admitted[4].settle(Amounts(requests=1))
        assert await _counter(sessions[0]) == (5, 0)
        with pytest.raises(LimitExceededError):
            await guards[0].reserve(WHO, Amounts(requests=6))
        await guards[0].reserve(WHO, Amounts(requests=5))
    finally:
        for engine in engines:
            await engine.dispose()
