"""Recent job history as a search workload: the scheduler's finished jobs of one pool.

Reads the scheduler's ``scheduler_jobs`` table (migration 0005, owned by the scheduler) by
column name, read-only: arrival = submission time, size = the measured size when known
(else the estimate), demand = GPUs asked for.
"""

from __future__ import annotations

from sqlalchemy import Float, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.platform.db.types import UtcDateTime
from llmproxy.platform.errors import InvalidArgumentError

__all__ = ["HistoryReader"]

_QUERY = text(
    "SELECT submitted_at, COALESCE(actual_size, size) AS size, demand FROM scheduler_jobs "
    "WHERE pool = :pool AND state = 'completed' AND COALESCE(actual_size, size) > 0 "
    "AND demand > 0 ORDER BY submitted_at DESC LIMIT :limit"
).columns(submitted_at=UtcDateTime(), size=Float(), demand=Float())


class HistoryReader:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], default_limit: int = 5000):
        self._sessions = sessions
        self._default_limit = default_limit

    async def __call__(
        self, pool: str, limit: int | None
    ) -> tuple[tuple[float, float, float], ...]:
        """The pool's last ``limit`` completed jobs as (arrival s, size GPU-s, demand GPUs),
        arrivals relative to the earliest of them.

        Raises:
            InvalidArgumentError: no completed job in the pool, or no jobs table to read.
        """
        try:
            async with self._sessions() as session:
                rows = (
                    await session.execute(
                        _QUERY, {"pool": pool, "limit": limit or self._default_limit}
                    )
                ).all()
        except DBAPIError as exc:
            raise InvalidArgumentError(
                f"job history cannot be read (scheduler_jobs: {exc.orig})", field="history_pool"
            ) from exc
        if not rows:
            raise InvalidArgumentError(
                f"pool {pool!r} has no completed jobs to optimise for", field="history_pool"
            )
        first = min(r.submitted_at for r in rows)
        return tuple(
            sorted(
                ((r.submitted_at - first).total_seconds(), float(r.size), float(r.demand))
                for r in rows
            )
        )
