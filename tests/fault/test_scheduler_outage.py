"""The scheduler through a database outage (found by the fault suite: a job that finished
while the database was away stayed RUNNING for good).

A heartbeat reporting a finished job fails to persist; the core cannot be reloaded while
the database is away. The executor keeps its report and sends it again. That second
heartbeat must not be accepted by the half-applied core (it would answer "fine", the
executor would drop the report, and the stored job would stay RUNNING): it fails too, until
the database is back; then the core is reloaded and the report is stored — the job
completes once.
"""

from __future__ import annotations

import pytest

from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.errors import UnavailableError
from llmproxy.scheduler.engine import SchedulerEngine, SubmitRequest
from llmproxy.scheduler.live import JobState, LiveScheduler, Progress
from llmproxy.scheduler.repository import SchedulerRepository
from llmproxy.scheduler.timebase import TimeBase


class Outage:
    """Wraps the repository; while ``down``, every read and write raises OSError."""

    def __init__(self, repository: SchedulerRepository) -> None:
        self._repository = repository
        self.down = False

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        target = getattr(self._repository, name)
        if not callable(target):
            return target

        async def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            if self.down:
                raise ConnectionRefusedError(111, "Connect call failed")
            return await target(*args, **kwargs)

        return call


async def test_a_job_that_finished_during_a_database_outage_completes_once(
    sqlite_db_url: str,
) -> None:
    engine = create_engine(sqlite_db_url)
    timebase = TimeBase()
    store = SchedulerRepository(session_factory(engine), timebase)
    outage = Outage(store)
    scheduler = SchedulerEngine(
        LiveScheduler(executor_timeout=60.0),
        outage,  # type: ignore[arg-type]
        None,
        timebase,
    )
    await scheduler.start(expiry_interval=30.0)
    try:
        await scheduler.register_executor("ex-1", "gpu", 1, "process")
        job = await scheduler.submit(SubmitRequest(pool="gpu", demand=1, size=5.0))
        (assigned,) = await scheduler.heartbeat("ex-1", [])
        assert assigned.job_id == job.job_id
        assert (await store.get(job.job_id)).state is JobState.RUNNING  # type: ignore[union-attr]

        finished = [Progress(job.job_id, attained=5.0, finished=True)]
        outage.down = True
        with pytest.raises(UnavailableError):
            await scheduler.heartbeat("ex-1", finished)
        # the executor sends its report again while the database is still away
        with pytest.raises(UnavailableError):
            await scheduler.heartbeat("ex-1", finished)

        outage.down = False
        assert await scheduler.heartbeat("ex-1", finished) == []
        stored = await store.get(job.job_id)
        assert stored is not None and stored.state is JobState.COMPLETED
        # a late duplicate of the report changes nothing
        assert await scheduler.heartbeat("ex-1", finished) == []
        assert (await store.get(job.job_id)).state is JobState.COMPLETED  # type: ignore[union-attr]
    finally:
        await scheduler.stop()
        await engine.dispose()
