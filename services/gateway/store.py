"""SQL adapters of the gateway: keys, limits and their counters, and the usage ledger.

Rows in, plain records out; the decisions stay in ``keys.py`` and ``limits.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.gateway.limits import Amounts, Claim, LimitRule, rejection
from llmproxy.platform.db.models import (
    ApiKey,
    LimitCounter,
    LimitReservation,
    Tenant,
    UsageLimit,
    UsageRecord,
)

__all__ = [
    "KeyRecord",
    "SqlKeyDirectory",
    "SqlLimitStore",
    "SqlUsageLedger",
    "UsageFilter",
    "UsageTotals",
    "rule_of",
]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    tenant_id: str
    app_id: str
    secret_hash: str
    scopes: frozenset[str]
    revoked: bool
    #: the tenant's reference model for savings ("" = the catalog's)
    reference_model: str = ""


class SqlKeyDirectory:
    """Finds API keys (with their tenant's settings) by their public id."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def find_key(self, key_id: str) -> KeyRecord | None:
        query = (
            select(ApiKey, Tenant.reference_model)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.id == key_id)
        )
        async with self._sessions() as session:
            row = (await session.execute(query)).first()
        if row is None:
            return None
        key: ApiKey = row[0]
        reference: str | None = row[1]
        return KeyRecord(
            key_id=key.id,
            tenant_id=key.tenant_id,
            app_id=key.app_id,
            secret_hash=key.secret_hash,
            scopes=frozenset(key.scopes.split()),
            revoked=key.revoked_at is not None,
            reference_model=reference or "",
        )


def rule_of(row: UsageLimit) -> LimitRule:
    return LimitRule(
        id=row.id,
        tenant_id=row.tenant_id,
        metric=row.metric,
        window=row.window,
        amount=row.amount,
        app_id=row.app_id,
        key_id=row.key_id,
        user_id=row.user_id,
    )


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _counter(claim: Claim):  # type: ignore[no-untyped-def]
    return _counter_at(claim.rule.id, claim.subject, claim.window_start)


def _counter_at(limit_id: str, subject: str, window_start: datetime):  # type: ignore[no-untyped-def]
    return and_(
        LimitCounter.limit_id == limit_id,
        LimitCounter.subject == subject,
        LimitCounter.window_start == window_start,
    )


def _held(claims: Sequence[Claim], request_id: str) -> list[dict[str, object]]:
    """What a reservation row records of its claims: enough to release them alone, and to
    count what the ledger recorded for the request (its metric, tenant and request id)."""
    return [
        {
            "limit_id": c.rule.id,
            "subject": c.subject,
            "window_start": c.window_start.isoformat(),
            "amount": c.amount,
            "metric": c.rule.metric,
            "tenant_id": c.rule.tenant_id,
            "request_id": request_id,
        }
        for c in claims
    ]


async def _recorded(session: AsyncSession, tenant_id: str, request_id: str) -> Amounts:
    """What the usage ledger holds for one request (nothing if it never got there)."""
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(UsageRecord.cost_nanousd), 0),
                func.coalesce(func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens), 0),
            ).where(UsageRecord.request_id == request_id, UsageRecord.tenant_id == tenant_id)
        )
    ).one()
    return Amounts(cost_nanousd=int(row[1]), requests=int(row[0]), tokens=int(row[2]))


class SqlLimitStore:
    """Limits and counters in the database; reservations are conditional updates.

    ``UPDATE ... SET reserved = reserved + :n WHERE used + reserved + :n <= :limit`` is
    atomic on both backends: PostgreSQL re-checks the condition on the row after waiting
    for its lock, and SQLite runs one writer at a time. All claims of a request commit
    in one transaction or not at all.

    The reservation row is the settle-once token: whoever deletes it (the settlement, or
    the sweeper after the TTL) moves the amounts, in the same transaction; anyone who finds
    it gone does nothing. So a settlement retried after a commit that did land never adds
    ``used`` twice, and a request whose gateway died after answering is counted from the
    ledger by the sweeper — spend equals the ledger's sum.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def rules_for(self, tenant_id: str) -> Sequence[LimitRule]:
        async with self._sessions() as session:
            rows: list[UsageLimit] = list(
                await session.scalars(select(UsageLimit).where(UsageLimit.tenant_id == tenant_id))
            )
            return [rule_of(r) for r in rows]

    async def reserve(
        self,
        claims: Sequence[Claim],
        now: datetime,
        *,
        reservation_id: str,
        expires_at: datetime,
        request_id: str = "",
    ) -> None:
        async with self._sessions.begin() as session:
            insert = _insert(session)
            session.add(
                LimitReservation(
                    id=reservation_id,
                    claims=_held(claims, request_id),
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            for claim in claims:
                await session.execute(
                    insert(LimitCounter)
                    .values(
                        limit_id=claim.rule.id,
                        subject=claim.subject,
                        window_start=claim.window_start,
                        used=0,
                        reserved=0,
                    )
                    .on_conflict_do_nothing()
                )
                won = await session.execute(
                    update(LimitCounter)
                    .where(
                        _counter(claim),
                        LimitCounter.used + LimitCounter.reserved + claim.amount
                        <= claim.rule.amount,
                    )
                    .values(reserved=LimitCounter.reserved + claim.amount)
                )
                if getattr(won, "rowcount", 0) != 1:
                    counter = (
                        await session.execute(
                            select(LimitCounter.used, LimitCounter.reserved).where(_counter(claim))
                        )
                    ).one()
                    used, reserved = int(counter[0]), int(counter[1])
                    # leaving the block rolls back this request's earlier claims
                    raise rejection(claim, used, reserved, now)

    async def settle(
        self, claims: Sequence[Claim], actual: Amounts, *, reservation_id: str
    ) -> None:
        async with self._sessions.begin() as session:
            # Whoever deletes the row moves the amounts. Gone already: an earlier attempt
            # of this settlement committed (its acknowledgement was lost), or the sweeper
            # released it past its TTL and counted the ledger's amounts. Either way: nothing.
            gone = await session.execute(
                delete(LimitReservation).where(LimitReservation.id == reservation_id)
            )
            if getattr(gone, "rowcount", 0) != 1:
                return
            for claim in claims:
                await session.execute(
                    update(LimitCounter)
                    .where(_counter(claim))
                    .values(
                        used=LimitCounter.used + actual.of(claim.rule.metric),
                        reserved=LimitCounter.reserved - claim.amount,
                    )
                )

    async def release_expired(self, now: datetime, *, batch: int = 100) -> int:
        async with self._sessions() as session:
            expired: list[str] = list(
                await session.scalars(
                    select(LimitReservation.id)
                    .where(LimitReservation.expires_at <= now)
                    .order_by(LimitReservation.expires_at)
                    .limit(batch)
                )
            )
        released = 0
        for reservation_id in expired:
            async with self._sessions.begin() as session:
                row = (
                    await session.execute(
                        delete(LimitReservation)
                        .where(LimitReservation.id == reservation_id)
                        .returning(LimitReservation.claims)
                    )
                ).first()
                if row is None:
                    continue  # settled, or another replica's sweeper released it
                held_claims: list[dict[str, object]] = list(row[0])
                # the gateway died before settling: count what the ledger recorded of the
                # request (it answered and published), or nothing (it never got that far)
                first = held_claims[0] if held_claims else {}
                recorded = (
                    await _recorded(session, str(first["tenant_id"]), str(first["request_id"]))
                    if first.get("request_id") and first.get("tenant_id")
                    else Amounts()
                )
                for held in held_claims:
                    metric = str(held.get("metric", ""))
                    await session.execute(
                        update(LimitCounter)
                        .where(
                            _counter_at(
                                str(held["limit_id"]),
                                str(held["subject"]),
                                datetime.fromisoformat(str(held["window_start"])),
                            )
                        )
                        .values(
                            reserved=LimitCounter.reserved - int(str(held["amount"])),
                            used=LimitCounter.used + (recorded.of(metric) if metric else 0),
                        )
                    )
                released += 1
        return released


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which usage rows to total: always one tenant; optionally narrower, within a window."""

    tenant_id: str
    app_id: str = ""
    user_id: str = ""
    conversation_id: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cost_nanousd: int
    saved_nanousd: int
    #: model -> (requests, cost_nanousd)
    by_model: dict[str, tuple[int, int]]


class SqlUsageLedger:
    """Totals over ``usage_records``, the ledger the profiler writes once per ``llm.completed``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def totals(self, where: UsageFilter) -> UsageTotals:
        conditions = [UsageRecord.tenant_id == where.tenant_id]
        for column, value in (
            (UsageRecord.app_id, where.app_id),
            (UsageRecord.user_id, where.user_id),
            (UsageRecord.conversation_id, where.conversation_id),
        ):
            if value:
                conditions.append(column == value)
        if where.since is not None:
            conditions.append(UsageRecord.created_at >= where.since)
        if where.until is not None:
            conditions.append(UsageRecord.created_at < where.until)
        hit = UsageRecord.cache_outcome.in_(
            ("CACHE_OUTCOME_EXACT_HIT", "CACHE_OUTCOME_SEMANTIC_HIT")
        )
        query = (
            select(
                UsageRecord.model,
                func.count(),
                func.sum(case((hit, 1), else_=0)),
                func.sum(UsageRecord.input_tokens),
                func.sum(UsageRecord.output_tokens),
                func.sum(UsageRecord.cost_nanousd),
                func.sum(UsageRecord.saved_nanousd),
            )
            .where(*conditions)
            .group_by(UsageRecord.model)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        by_model: dict[str, tuple[int, int]] = {
            str(r[0]): (int(r[1]), int(r[5] or 0)) for r in rows
        }
        return UsageTotals(
            requests=sum(int(r[1]) for r in rows),
            cache_hits=sum(int(r[2] or 0) for r in rows),
            input_tokens=sum(int(r[3] or 0) for r in rows),
            output_tokens=sum(int(r[4] or 0) for r in rows),
            cost_nanousd=sum(int(r[5] or 0) for r in rows),
            saved_nanousd=sum(int(r[6] or 0) for r in rows),
            by_model=by_model,
        )
