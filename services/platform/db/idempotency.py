"""Exactly-once effects for at-least-once events: claim the event id in the same transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from llmproxy.platform.db.models import ProcessedEvent

__all__ = ["claim_event"]


async def claim_event(
    session: AsyncSession, *, consumer: str, event_id: str, now: datetime
) -> bool:
    """Record that ``consumer`` handles ``event_id``; False if it already did.

    Call inside the transaction that applies the event's effects: either both commit or
    neither does, so a redelivered event is applied exactly once.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(ProcessedEvent)
        .values(consumer=consumer, event_id=event_id, processed_at=now)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))
