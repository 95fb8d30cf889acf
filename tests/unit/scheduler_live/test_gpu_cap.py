"""The optimizer's per-job GPU cap (``max_job_gpus`` of a policy) in the live scheduler: larger
demands are clipped (the same work on fewer GPUs, for longer), waiting jobs follow the cap
when it changes, running ones keep their GPUs."""

from __future__ import annotations

import pytest

from llmproxy.scheduler.core import WfqConfig
from llmproxy.scheduler.live import InvalidJobError, JobState, LiveScheduler
from tests.unit.scheduler_live.factories import create_scheduler, spec


def test_a_demand_above_the_cap_is_clipped_and_runs_longer() -> None:
    scheduler = create_scheduler(gpus=8)
    scheduler.set_config("p", WfqConfig.single_class(), 0.0, max_job_gpus=2)
    job = spec(800.0, demand=8)
    changes = scheduler.submit(job, 0.0)
    held = changes.jobs[job.job_id]
    assert (held.demand, held.requested_demand, held.state) == (2, 8, JobState.RUNNING)
    assert held.prediction is not None and held.prediction.completion == pytest.approx(400.0)


def test_waiting_jobs_follow_the_cap_and_running_ones_keep_their_gpus() -> None:
    scheduler = create_scheduler(gpus=4)
    running, waiting = spec(400.0, demand=4), spec(400.0, demand=4)
    scheduler.submit(running, 0.0)
    scheduler.submit(waiting, 0.0)
    scheduler.set_config("p", WfqConfig.single_class(), 10.0, max_job_gpus=2)
    assert scheduler.job(running.job_id).demand == 4
    assert scheduler.job(waiting.job_id).demand == 2
    # the cap lifted: the waiting job gets back what it asked for
    scheduler.set_config("p", WfqConfig.single_class(), 20.0, max_job_gpus=0)
    back = scheduler.job(waiting.job_id)
    assert (back.demand, back.requested_demand) == (4, 0)


def test_a_negative_cap_is_refused_and_a_restore_keeps_the_cap() -> None:
    scheduler = create_scheduler(gpus=4)
    with pytest.raises(InvalidJobError, match="max_job_gpus"):
        scheduler.set_config("p", WfqConfig.single_class(), 0.0, max_job_gpus=-1)
    restored = LiveScheduler(executor_timeout=10.0)
    restored.restore(
        [],
        [scheduler.executor("e0")],
        {"p": WfqConfig.single_class()},
        next_seq=1,
        now=0.0,
        caps={"p": 1},
    )
    job = spec(10.0, demand=3)
    assert restored.submit(job, 0.0).jobs[job.job_id].demand == 1
