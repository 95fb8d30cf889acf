"""Fair sharing by owner (per-tenant flows of LLM request queues): jobs with the same share
form one WFQ flow of the share's weight, so a burst of one tenant cannot starve another."""

from __future__ import annotations

import pytest

from llmproxy.scheduler.live import InvalidJobError, JobState, LiveScheduler
from tests.unit.scheduler_live.factories import create_scheduler, spec
from tests.unit.scheduler_live.test_queue import run_to_completion


def _order(scheduler: LiveScheduler) -> list[str]:
    """Job ids in the order they complete."""
    done = run_to_completion(scheduler)
    return sorted(done, key=lambda job_id: done[job_id])


def test_a_burst_of_one_tenant_does_not_starve_a_single_request_of_another() -> None:
    scheduler = create_scheduler(gpus=1)
    burst = [spec(1.0, share="tenant:a", share_weight=1.0) for _ in range(8)]
    for s in burst:
        scheduler.submit(s, 0.0)
    single = spec(1.0, share="tenant:b", share_weight=1.0)
    changes = scheduler.submit(single, 0.1)

    # the first of the burst is running; b's request is next (FIFO would make it ninth)
    predicted = changes.jobs[single.job_id].prediction
    assert predicted is not None and predicted.start == pytest.approx(1.0)
    order = _order(scheduler)
    assert order.index(single.job_id) == 1


def test_backlogged_tenants_are_served_in_proportion_to_their_weights() -> None:
    scheduler = create_scheduler(gpus=1)
    heavy = [spec(1.0, share="tenant:gold", share_weight=2.0) for _ in range(20)]
    light = [spec(1.0, share="tenant:free", share_weight=1.0) for _ in range(20)]
    for a, b in zip(heavy, light, strict=True):
        scheduler.submit(a, 0.0)
        scheduler.submit(b, 0.0)
    order = _order(scheduler)
    first_15 = set(order[:15])
    served_gold = sum(1 for s in heavy if s.job_id in first_15)
    # weights 2:1 -> about 10 of gold's and 5 of free's in the first 15 served
    assert 9 <= served_gold <= 11


def test_without_shares_the_jobs_keep_their_size_classes() -> None:
    scheduler = create_scheduler(gpus=1)
    first = spec(1.0)
    scheduler.submit(first, 0.0)
    job = scheduler.job(first.job_id)
    assert job.share == "" and job.share_weight == 0.0 and job.state is JobState.RUNNING


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"share": "tenant:a", "share_weight": 0.0}, "share_weight"),
        ({"share": "tenant:a", "share_weight": -1.0}, "share_weight"),
        ({"share": "tenant:a", "share_weight": float("nan")}, "share_weight"),
        ({"share": "tenant:a", "share_weight": 1e9}, "share_weight"),
        ({"share": "", "share_weight": 2.0}, "a weight needs a share"),
    ],
)
def test_a_bad_share_weight_is_refused_and_changes_nothing(
    fields: dict[str, object], message: str
) -> None:
    scheduler = create_scheduler(gpus=1)
    with pytest.raises(InvalidJobError, match=message):
        scheduler.submit(spec(1.0, **fields), 0.0)
    assert scheduler.active_jobs() == []


def test_shares_survive_a_restore() -> None:
    scheduler = create_scheduler(gpus=1)
    for _ in range(3):
        scheduler.submit(spec(1.0, share="tenant:a", share_weight=1.0), 0.0)
    restored = LiveScheduler(executor_timeout=10.0, tolerance=scheduler.tolerance)
    restored.restore(
        scheduler.active_jobs(),
        [scheduler.executor("e0")],
        {},
        next_seq=100,
        now=0.5,
    )
    late = spec(1.0, share="tenant:b", share_weight=1.0)
    restored.submit(late, 0.5)
    order = _order(restored)
    assert order.index(late.job_id) == 1
