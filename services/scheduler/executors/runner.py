"""The port between an executor agent and what actually runs jobs (processes, or a
simulation), plus the report type both runners produce."""

from __future__ import annotations

import asyncio
from typing import Protocol

from llmproxy.scheduler.live import Assignment, Progress

__all__ = ["Runner"]


class Runner(Protocol):
    """Runs assigned jobs; the agent asks it for reports and reconciles it with the
    scheduler's assignments after every heartbeat."""

    #: set whenever a job ends (the agent then reports at once instead of waiting)
    changed: asyncio.Event

    def running(self) -> set[str]:
        """Jobs started and not yet reported as ended."""
        ...

    def start(self, assignment: Assignment) -> None:
        """Start a job (never called for a job in :meth:`running`)."""
        ...

    def stop(self, job_id: str) -> None:
        """Stop a job the scheduler no longer assigns (cancelled, or given to another)."""
        ...

    def reports(self) -> list[Progress]:
        """Progress of every job in :meth:`running`; ended ones say finished or failed."""
        ...

    def forget(self, job_ids: set[str]) -> None:
        """The scheduler has heard that these ended; stop reporting them."""
        ...

    def seconds_to_next_end(self) -> float | None:
        """Wall seconds until a job is known to end (simulations), else None."""
        ...

    async def close(self) -> None:
        """Stop everything still running."""
        ...
