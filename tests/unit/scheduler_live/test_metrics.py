"""The scheduler's metrics: queue length per pool and the ETA error of completed jobs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from llmproxy.scheduler.live import Changes, EventKind, JobState, LiveJob, LiveScheduler, Prediction
from llmproxy.scheduler.metrics import eta_error, record_changes


def _job(state: JobState, *, pool: str = "p", job_id: str = "j1") -> LiveJob:
    return LiveJob(
        job_id=job_id, seq=1, pool=pool, demand=1, size=100.0, state=state, submitted_at=10.0
    )


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_eta_error_is_the_pcs_prediction_error_of_the_first_promise() -> None:
    promised = Prediction(start=10.0, completion=110.0, made_at=10.0, reason="submitted")
    done = replace(
        _job(JobState.COMPLETED),
        first_prediction=promised,
        prediction=replace(promised, completion=140.0),  # later revisions do not count
        completed_at=135.0,
    )
    percent, seconds = eta_error(done)  # type: ignore[misc]
    # predicted JCT 100 s, actual 125 s: |100 - 125| / 100
    assert (percent, seconds) == pytest.approx((25.0, 25.0))
    assert eta_error(replace(done, first_prediction=None)) is None
    assert eta_error(replace(done, completed_at=None)) is None
    no_time = replace(promised, completion=None)
    assert eta_error(replace(done, first_prediction=no_time)) is None


def test_recorded_changes_set_the_queue_gauges_and_observe_completions() -> None:
    core = LiveScheduler(executor_timeout=10.0)
    before = _sample("llmproxy_scheduler_eta_error_percent_count")
    promised = Prediction(start=10.0, completion=60.0, made_at=10.0, reason="submitted")
    done = replace(
        _job(JobState.COMPLETED, pool="metrics-pool", job_id="done"),
        first_prediction=promised,
        completed_at=70.0,
    )
    changes = Changes()
    changes.record(done, EventKind.COMPLETED, "finished")
    record_changes(core, changes)
    assert _sample("llmproxy_scheduler_eta_error_percent_count") == before + 1
    # nothing active in the pool any more: both series read 0
    assert _sample("llmproxy_scheduler_jobs", pool="metrics-pool", state="queued") == 0
    assert _sample("llmproxy_scheduler_jobs", pool="metrics-pool", state="running") == 0
