"""A job joining the end of the queue is predicted by resuming the pool's last forecast instead
of replaying the whole queue (SubmitJob's cost no longer grows with the queue). The result
must be what the full replay gives: the same transitions, the same predictions (to rounding),
the same starts — checked against the scheduler with the shortcut turned off, over random
mixes of submissions, completions early and late, cancels, executors and shares."""

from __future__ import annotations

import random
import time

import pytest

from llmproxy.scheduler.live import (
    Changes,
    JobState,
    LiveScheduler,
    Progress,
    SubmitSpec,
    Tolerance,
)
from tests.unit.scheduler_live.factories import two_classes


class FullReplay(LiveScheduler):
    """The scheduler as it was: every submission replays the whole queue."""

    def _extend_forecast(self, job, now):  # type: ignore[no-untyped-def]
        return None


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a))


def _same(a: Changes, b: Changes) -> None:
    assert list(a.jobs) == list(b.jobs)
    assert [(t.job.job_id, t.kind, t.reason) for t in a.transitions] == [
        (t.job.job_id, t.kind, t.reason) for t in b.transitions
    ]
    for job_id, job in a.jobs.items():
        other = b.jobs[job_id]
        assert (job.state, job.executor_id, job.gpu_indices) == (
            other.state,
            other.executor_id,
            other.gpu_indices,
        )
        for mine, theirs in ((job.prediction, other.prediction),
                             (job.first_prediction, other.first_prediction)):  # fmt: skip
            assert (mine is None) == (theirs is None)
            if mine is not None and theirs is not None:
                assert _close(mine.start, theirs.start), (mine, theirs)
                assert _close(mine.completion, theirs.completion), (mine, theirs)
                assert mine.reason == theirs.reason


def _pair(**options: object) -> tuple[LiveScheduler, LiveScheduler]:
    fast = LiveScheduler(executor_timeout=1e9, **options)  # type: ignore[arg-type]
    full = FullReplay(executor_timeout=1e9, **options)  # type: ignore[arg-type]
    return fast, full


@pytest.mark.parametrize("seed", range(8))
def test_resumed_forecasts_equal_full_replays_over_random_histories(seed: int) -> None:
    rng = random.Random(seed)
    options: dict[str, object] = {"tolerance": Tolerance(rng.choice([0.5, 1.0, 5.0]), 0.02)}
    if seed % 3 == 1:
        options["default_config"] = two_classes(boundary=50.0)
    fast, full = _pair(**options)
    now = 0.0
    executors = {"e0": rng.choice([1, 2, 4])}
    for scheduler in (fast, full):
        scheduler.register_executor("e0", "p", executors["e0"], "simulated", now)
    for step in range(250):
        now += rng.choice([0.0, 0.0, 0.1, 1.0, 5.0])
        action = rng.random()
        if action < 0.6:
            share = rng.choice(["", "", "tenant:a", "tenant:b"])
            spec = SubmitSpec(
                job_id=f"j{step}",
                pool="p",
                demand=rng.randint(1, max(executors.values())),
                size=rng.choice([1.0, 5.0, 20.0, 100.0, rng.uniform(0.5, 200)]),
                share=share,
                share_weight=rng.choice([1.0, 2.0]) if share else 0.0,
            )
            _same(fast.submit(spec, now), full.submit(spec, now))
        elif action < 0.85:
            running = [j for j in full.active_jobs() if j.state is JobState.RUNNING]
            if not running:
                continue
            job = rng.choice(running)
            # ends early, on time or late; sometimes it fails
            believed_end = job.run_started_at + job.size / job.demand
            now = max(now, believed_end * rng.choice([0.5, 1.0, 1.0, 1.3]))
            report = [Progress(job.job_id, job.size, finished=True, failed=rng.random() < 0.1)]
            a, assigned_a = fast.heartbeat(job.executor_id, report, now)
            b, assigned_b = full.heartbeat(job.executor_id, report, now)
            _same(a, b)
            assert assigned_a == assigned_b
        elif action < 0.92:
            waiting = [j for j in full.active_jobs() if j.state is not JobState.RUNNING]
            if waiting:
                job_id = rng.choice(waiting).job_id
                _same(fast.cancel(job_id, now), full.cancel(job_id, now))
        elif action < 0.96 and len(executors) < 3:
            name = f"e{len(executors)}"
            executors[name] = rng.choice([1, 2, 4])
            _same(
                fast.register_executor(name, "p", executors[name], "simulated", now),
                full.register_executor(name, "p", executors[name], "simulated", now),
            )
        else:
            # a quiet heartbeat: nothing ends, but an overrunning job gets revised
            name = rng.choice(sorted(executors))
            a, _ = fast.heartbeat(name, [], now)
            b, _ = full.heartbeat(name, [], now)
            _same(a, b)
    assert [j.job_id for j in fast.active_jobs()] == [j.job_id for j in full.active_jobs()]


def test_a_long_queue_is_extended_without_replaying_it() -> None:
    fast, full = _pair(tolerance=Tolerance(1.0, 0.02))
    for scheduler in (fast, full):
        scheduler.register_executor("busy", "q", 1, "simulated", 0.0)

    def submit_all(scheduler: LiveScheduler, n: int, start: int) -> float:
        began = time.perf_counter()
        for i in range(start, start + n):
            spec = SubmitSpec(job_id=f"j{i}", pool="q", demand=1, size=60.0)
            scheduler.submit(spec, i * 0.001)
        return time.perf_counter() - began

    for scheduler in (fast, full):
        submit_all(scheduler, 500, 0)
    fast_s, full_s = submit_all(fast, 50, 500), submit_all(full, 50, 500)
    for job in full.active_jobs():
        mine = fast.job(job.job_id).prediction
        assert mine is not None and job.prediction is not None
        assert _close(mine.completion, job.prediction.completion)
    # a resumed forecast costs O(1), a replay O(queue): at 500 queued, far apart
    assert fast_s * 10 < full_s, (fast_s, full_s)
