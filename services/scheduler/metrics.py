"""The scheduler's Prometheus metrics: queue length per pool and the ETA error of ended jobs.

:func:`record_changes` is called with every committed :class:`~llmproxy.scheduler.live.Changes`
(on the event loop, after the state was persisted), so the gauges always show the state
the database holds and each completed job is observed exactly once.

* ``llmproxy_scheduler_jobs{pool,state}`` — active jobs, ``state`` = queued | running
  (queued counts preempted jobs waiting again); the queue length is the ``queued`` series;
* ``llmproxy_scheduler_eta_error_percent`` — for each completed job, the PCS prediction error
  ``100·|predicted - actual| / predicted`` of its job completion time (from submission), as
  predicted at submission (the promise the submitter was given);
* ``llmproxy_scheduler_eta_error_seconds`` — the same error in (scheduler) seconds.
"""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from llmproxy.scheduler.live import Changes, JobState, LiveJob, LiveScheduler

__all__ = ["ETA_ERROR_PERCENT", "ETA_ERROR_SECONDS", "JOBS", "eta_error", "record_changes"]

JOBS = Gauge(
    "llmproxy_scheduler_jobs", "Active scheduler jobs by pool and state", ["pool", "state"]
)
ETA_ERROR_PERCENT = Histogram(
    "llmproxy_scheduler_eta_error_percent",
    "Completion-time prediction error of completed jobs, 100*|predicted-actual|/predicted",
    buckets=(1, 2.5, 5, 10, 20, 35, 50, 75, 100, 200, 500),
)
ETA_ERROR_SECONDS = Histogram(
    "llmproxy_scheduler_eta_error_seconds",
    "Completion-time prediction error of completed jobs, |predicted-actual| in seconds",
    buckets=(1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)


def eta_error(job: LiveJob) -> tuple[float, float] | None:
    """(percent, seconds) error of ``job``'s first completion prediction; None if unknown.

    Percent is of the predicted job completion time (submission to completion), the PCS
    metric; a job that got no prediction (no executor could run it then) has none.
    """
    first = job.first_prediction
    if job.completed_at is None or first is None or first.completion is None:
        return None
    predicted = first.completion - job.submitted_at
    actual = job.completed_at - job.submitted_at
    seconds = abs(predicted - actual)
    if predicted <= 0:
        return None
    return 100.0 * seconds / predicted, seconds


def record_changes(core: LiveScheduler, changes: Changes) -> None:
    """Update the gauges of the pools ``changes`` touched; observe completed jobs' ETA error."""
    for transition in changes.transitions:
        job = transition.job
        if job.state is JobState.COMPLETED and (error := eta_error(job)) is not None:
            ETA_ERROR_PERCENT.observe(error[0])
            ETA_ERROR_SECONDS.observe(error[1])
    pools = {job.pool for job in changes.jobs.values()}
    if not pools:
        return
    for pool in pools:
        # counted by the core as jobs change: no scan of the queue on every command
        queued, running = core.job_counts(pool)
        JOBS.labels(pool, "queued").set(queued)
        JOBS.labels(pool, "running").set(running)
