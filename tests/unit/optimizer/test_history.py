"""Job history as a search workload: the scheduler's completed jobs of one pool, read from
its ``scheduler_jobs`` table (SQLite, migrated to head)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.optimizer.history import HistoryReader
from llmproxy.optimizer.pcs.workload import WorkloadSpec, load_jobs
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.db.models import Base
from llmproxy.platform.errors import InvalidArgumentError

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def sessions(sqlite_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(sqlite_db_url)
    yield session_factory(engine)
    await engine.dispose()


def job_row(number: int, **values: Any) -> dict[str, Any]:
    """A scheduler_jobs row: the columns history reads, the rest filled by type."""
    table = Base.metadata.tables["scheduler_jobs"]
    row: dict[str, Any] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, DateTime):
            row[column.name] = T0
        elif isinstance(kind, Boolean):
            row[column.name] = False
        elif isinstance(kind, Integer):
            row[column.name] = number
        elif isinstance(kind, Float):
            row[column.name] = 0.0
        elif isinstance(kind, String | Text):
            row[column.name] = f"{column.name}-{number}"
    row.update(values)
    return row


async def test_completed_jobs_of_the_pool_become_the_workload(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    table = Base.metadata.tables["scheduler_jobs"]
    rows = [
        job_row(
            1,
            pool="gpu-a",
            state="completed",
            submitted_at=T0 + timedelta(seconds=30),
            size=100.0,
            actual_size=120.0,
            demand=2,
        ),
        job_row(
            2,
            pool="gpu-a",
            state="completed",
            submitted_at=T0,
            size=50.0,
            actual_size=None,
            demand=1,
        ),
        job_row(3, pool="gpu-a", state="running", submitted_at=T0, size=70.0, demand=1),
        job_row(4, pool="gpu-b", state="completed", submitted_at=T0, size=80.0, demand=4),
    ]
    async with sessions.begin() as session:
        await session.execute(insert(table), rows)
    history = await HistoryReader(sessions)("gpu-a", None)
    assert history == ((0.0, 50.0, 1.0), (30.0, 120.0, 2.0))  # measured size wins
    jobs = load_jobs(WorkloadSpec("history", "gpu-a", rows=history, gpus=8))
    assert [(j.arrival, j.size, j.demand) for j in jobs] == [(0.0, 50.0, 1.0), (30.0, 120.0, 2.0)]
    with pytest.raises(InvalidArgumentError, match="pool 'gpu-c' has no completed jobs"):
        await HistoryReader(sessions)("gpu-c", None)
