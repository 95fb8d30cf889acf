"""The live scheduler's state machine: starts, predictions, executor loss, cancels, bad input,
configuration switches and restore."""

from __future__ import annotations

import math

import pytest

from llmproxy.scheduler.live import (
    EventKind,
    InvalidJobError,
    JobNotFoundError,
    JobState,
    LiveScheduler,
    Progress,
    UnknownExecutorError,
    UnknownPoolError,
)
from tests.unit.scheduler_live.factories import create_scheduler, spec, two_classes


def run_to_completion(scheduler: LiveScheduler, *, start: float = 0.0) -> dict[str, float]:
    """Let simulated executors finish every running job exactly when its size says; returns
    each job's completion time."""
    done: dict[str, float] = {}
    now = start
    while True:
        running = [j for j in scheduler.active_jobs() if j.state is JobState.RUNNING]
        if not running:
            return done
        job = min(running, key=lambda j: j.run_started_at + j.size / j.demand)
        now = max(now, job.run_started_at + job.size / job.demand)
        scheduler.heartbeat(job.executor_id, [Progress(job.job_id, job.size, finished=True)], now)
        done[job.job_id] = now


def test_exact_sizes_and_no_later_arrivals_make_every_first_prediction_exact() -> None:
    scheduler = create_scheduler(gpus=4, executors=2)
    specs = [spec(400, 4), spec(100, 2), spec(30, 1), spec(900, 3), spec(50, 2), spec(10, 1)]
    for s in specs:
        scheduler.submit(s, 0.0)
    predicted = {j.job_id: j.prediction.completion for j in scheduler.active_jobs()}

    actual = run_to_completion(scheduler)

    assert set(actual) == {s.job_id for s in specs}
    for job_id, completion in actual.items():
        assert completion == pytest.approx(predicted[job_id])


def test_a_queued_job_is_told_when_it_will_start_and_finish() -> None:
    scheduler = create_scheduler(gpus=4)
    first = spec(400, 2)  # 200 s on 2 GPUs
    scheduler.submit(first, 0.0)
    second = spec(400, 4)
    changes = scheduler.submit(second, 10.0)

    job = changes.jobs[second.job_id]
    assert job.state is JobState.QUEUED
    assert job.prediction is not None
    assert job.prediction.start == pytest.approx(200.0)
    assert job.prediction.completion == pytest.approx(300.0)
    assert [t.kind for t in changes.transitions if t.job.job_id == second.job_id] == [
        EventKind.SUBMITTED,
        EventKind.ESTIMATED,
    ]


def test_running_jobs_get_distinct_gpus_of_their_executor() -> None:
    scheduler = create_scheduler(gpus=4)
    a, b = spec(100, 2), spec(100, 2)
    scheduler.submit(a, 0.0)
    scheduler.submit(b, 0.0)

    assignments = scheduler.assignments("e0", 1.0)

    assert sorted(idx for x in assignments for idx in x.gpu_indices) == [0, 1, 2, 3]


def test_wfq_lets_a_small_job_pass_a_queue_of_large_ones_fifo_does_not() -> None:
    def small_job_completion(scheduler: LiveScheduler) -> float:
        for _ in range(3):
            scheduler.submit(spec(1000, 1), 0.0)
        small = spec(10, 1)
        changes = scheduler.submit(small, 1.0)
        completion = changes.jobs[small.job_id].prediction.completion
        assert completion is not None
        return completion

    assert small_job_completion(create_scheduler(gpus=1)) == pytest.approx(3010.0)
    wfq = create_scheduler(gpus=1, default_config=two_classes(boundary=100.0))
    assert small_job_completion(wfq) == pytest.approx(1010.0)


def test_a_large_job_at_the_head_is_not_overtaken_by_smaller_ones() -> None:
    scheduler = create_scheduler(gpus=4)
    scheduler.submit(spec(100, 2), 0.0)  # runs 0..50 on 2 GPUs
    big = spec(400, 4)
    scheduler.submit(big, 0.0)
    small = spec(10, 1)
    changes = scheduler.submit(small, 0.0)

    assert changes.jobs[small.job_id].state is JobState.QUEUED  # 2 GPUs free, but big is ahead
    assert changes.jobs[small.job_id].prediction.start == pytest.approx(150.0)


def test_a_lost_executors_jobs_are_requeued_and_their_estimates_revised_with_the_reason() -> None:
    scheduler = create_scheduler(gpus=2, executors=2)
    a, b = spec(200, 2), spec(200, 2)
    scheduler.submit(a, 0.0)
    scheduler.submit(b, 0.0)
    lost = scheduler.job(a.job_id).executor_id
    survivor = scheduler.job(b.job_id).executor_id
    scheduler.heartbeat(survivor, [], 9.0)

    changes = scheduler.expire_executors(10.5)

    job = scheduler.job(a.job_id)
    assert job.state is JobState.PREEMPTED and job.restarts == 1 and job.executor_id == ""
    kinds = [(t.kind, t.reason) for t in changes.transitions if t.job.job_id == a.job_id]
    assert (EventKind.PREEMPTED, f"executor {lost} lost") in kinds
    assert job.prediction is not None and job.prediction.reason == f"executor {lost} lost"
    # it restarts from the beginning on the survivor once b is done (100 s in)
    assert job.prediction.start == pytest.approx(100.0)
    assert job.prediction.completion == pytest.approx(200.0)
    assert not changes.executors[lost].alive


def test_a_lost_executor_that_comes_back_cannot_complete_a_requeued_job() -> None:
    scheduler = create_scheduler(gpus=2, executors=2)
    a = spec(200, 2)
    scheduler.submit(a, 0.0)
    lost = scheduler.job(a.job_id).executor_id
    other = "e1" if lost == "e0" else "e0"
    scheduler.heartbeat(other, [], 10.0)
    scheduler.expire_executors(10.5)  # `lost` silent since 0; the job restarts on `other`
    assert scheduler.job(a.job_id).executor_id == other

    changes, assignments = scheduler.heartbeat(lost, [Progress(a.job_id, 200, finished=True)], 11.0)

    assert assignments == []  # the stale process must stop
    assert scheduler.job(a.job_id).state is JobState.RUNNING
    assert all(t.kind is not EventKind.COMPLETED for t in changes.transitions)


def test_cancelling_a_running_job_frees_its_gpus_for_the_next() -> None:
    scheduler = create_scheduler(gpus=2)
    a, b = spec(1000, 2), spec(10, 2)
    scheduler.submit(a, 0.0)
    scheduler.submit(b, 0.0)

    changes = scheduler.cancel(a.job_id, 5.0)

    assert changes.jobs[a.job_id].state is JobState.CANCELLED
    assert [x.job_id for x in scheduler.assignments("e0", 5.0)] == [b.job_id]
    assert scheduler.job(b.job_id).prediction.completion == pytest.approx(10.0)


def test_a_failed_job_leaves_with_its_error() -> None:
    scheduler = create_scheduler(gpus=1)
    a = spec(10, 1)
    scheduler.submit(a, 0.0)
    changes, _ = scheduler.heartbeat(
        "e0", [Progress(a.job_id, 3, failed=True, error="exit 1")], 3.0
    )

    assert changes.jobs[a.job_id].state is JobState.FAILED
    assert changes.jobs[a.job_id].error == "exit 1"
    assert scheduler.find_job(a.job_id) is None


@pytest.mark.parametrize(
    ("overrides", "error", "field"),
    [
        ({"demand": 8}, InvalidJobError, "gpu_demand"),
        ({"demand": 0}, InvalidJobError, "gpu_demand"),
        ({"size": -5.0}, InvalidJobError, "size_seconds"),
        ({"size": math.inf}, InvalidJobError, "size_seconds"),
        ({"pool": "nowhere"}, UnknownPoolError, None),
    ],
)
def test_bad_submissions_are_refused_naming_the_problem_and_change_nothing(
    overrides: dict[str, object], error: type[Exception], field: str | None
) -> None:
    scheduler = create_scheduler(gpus=4)
    scheduler.submit(spec(10, 1), 0.0)
    before = scheduler.active_jobs()
    size = overrides.pop("size", 10.0)

    with pytest.raises(error) as caught:
        scheduler.submit(spec(size, **overrides), 1.0)  # type: ignore[arg-type]

    if field is not None:
        assert caught.value.field == field  # type: ignore[attr-defined]
    assert scheduler.active_jobs() == before


def test_unknown_jobs_and_executors_are_named() -> None:
    scheduler = create_scheduler()
    with pytest.raises(JobNotFoundError, match="nope"):
        scheduler.cancel("nope", 0.0)
    with pytest.raises(UnknownExecutorError, match="ghost"):
        scheduler.heartbeat("ghost", [], 0.0)


def test_a_configuration_switch_keeps_every_job_and_revises_every_prediction() -> None:
    scheduler = create_scheduler(gpus=1)
    jobs = [spec(1000, 1), spec(1000, 1), spec(10, 1)]
    for s in jobs:
        scheduler.submit(s, 0.0)
    assert scheduler.job(jobs[2].job_id).prediction.completion == pytest.approx(2010.0)

    changes = scheduler.set_config("p", two_classes(100.0), 5.0)

    assert {j.job_id for j in scheduler.active_jobs()} == {s.job_id for s in jobs}
    assert scheduler.job(jobs[0].job_id).state is JobState.RUNNING
    estimated = {t.job.job_id for t in changes.transitions if t.kind is EventKind.ESTIMATED}
    assert estimated == {s.job_id for s in jobs}
    assert all(
        t.reason == "configuration changed"
        for t in changes.transitions
        if t.kind is EventKind.ESTIMATED
    )
    # the small job now goes next: done at 1010 instead of 2010
    assert scheduler.job(jobs[2].job_id).class_index == 0
    assert scheduler.job(jobs[2].job_id).prediction.completion == pytest.approx(1010.0)


def test_a_restored_scheduler_has_the_same_queue_and_predictions() -> None:
    scheduler = create_scheduler(gpus=2, executors=2)
    for size, demand in [(300, 2), (100, 1), (50, 2), (20, 1)]:
        scheduler.submit(spec(size, demand), 0.0)
    jobs = scheduler.active_jobs()
    executors = [scheduler.executor(e) for e in ("e0", "e1")]

    twin = LiveScheduler(executor_timeout=10.0)
    changes = twin.restore(jobs, executors, {}, next_seq=5, now=3.0)

    assert twin.active_jobs() == jobs
    assert [t for t in changes.transitions] == []
    assert {e.executor_id: e.last_heartbeat for e in changes.executors.values()} == {
        "e0": 3.0,
        "e1": 3.0,
    }


def test_a_job_running_past_its_believed_size_gets_a_revised_estimate() -> None:
    scheduler = create_scheduler(gpus=1)
    a, b = spec(10, 1), spec(10, 1)
    scheduler.submit(a, 0.0)
    scheduler.submit(b, 0.0)

    changes, _ = scheduler.heartbeat("e0", [Progress(a.job_id, 15)], 15.0)

    revised = {t.job.job_id: t for t in changes.transitions if t.kind is EventKind.ESTIMATED}
    assert revised[b.job_id].reason == "job overran"
    assert revised[b.job_id].job.prediction.completion == pytest.approx(25.0)
