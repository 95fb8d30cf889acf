"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["UtcDateTime"]


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz`` and returns aware values, but SQLite stores text
    without an offset and returns naive ones; comparing the two kinds raises ``TypeError``.
    Values are converted to UTC before they are stored, so on SQLite the text sorts in time
    order, and every value read comes back aware.

    Binding a naive datetime raises ``ValueError``: it would be a guess about its zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # only SQLite gets here; it holds what process_bind_param wrote, which is UTC
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
