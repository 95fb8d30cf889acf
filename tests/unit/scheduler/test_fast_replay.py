"""The queue-head replay of FIFO-inside-classes policies agrees with the straightforward one."""

import math
from fractions import Fraction

import numpy as np
import pytest

from llmproxy.scheduler.core import Cluster, ClusterConfig, Job, WfqConfig, make_policy
from llmproxy.scheduler.core.predictor import (
    CompletionPredictor,
    predict_completion_time,
    replay_completion_time,
)
from llmproxy.scheduler.sim import inject_size_error

from .factories import random_jobs

POLICIES = {
    "fifo": ("fifo", {}),
    "wfq-1": ("wfq", {"config": WfqConfig.single_class()}),
    "wfq-2": (
        "wfq",
        {"config": WfqConfig((2_000, math.inf), (Fraction(19, 20), Fraction(1, 20)))},
    ),
    "wfq-3": (
        "wfq",
        {
            "config": WfqConfig(
                (500, 8_000, math.inf), (Fraction(95, 100), Fraction(48, 1000), Fraction(2, 1000))
            )
        },
    ),
}


def _workload(seed: int, error: float, fractional: bool) -> list[Job]:
    rng = np.random.default_rng(seed)
    jobs = random_jobs(rng, 90, max_demand=6)
    if fractional:
        jobs = [Job(j.job_id, j.arrival, j.size, float(rng.uniform(0.3, 5.0))) for j in jobs]
    if error:
        jobs = inject_size_error(jobs, error, rng)
    return jobs


@pytest.mark.parametrize("label", sorted(POLICIES))
@pytest.mark.parametrize(
    ("seed", "error", "fractional", "gpus"),
    [(11, 0.0, False, 8), (12, 30.0, False, 8), (13, 0.0, True, 6.5), (14, 20.0, True, 3)],
)
def test_fast_and_straightforward_replays_agree(label, seed, error, fractional, gpus):
    name, params = POLICIES[label]
    cluster = Cluster(ClusterConfig(gpus=gpus), make_policy(name, **params))
    rng = np.random.default_rng(seed)
    checked = 0
    for job in _workload(seed, error, fractional):
        while cluster.next_event_time() <= job.arrival:
            cluster.advance(cluster.next_event_time())
        cluster.submit(job, job.arrival)
        # the new job and a few others anywhere in the queues
        active = cluster.active_job_ids()
        for job_id in {job.job_id, *rng.choice(active, size=min(3, len(active))).tolist()}:
            fast = predict_completion_time(cluster, job_id)
            slow = replay_completion_time(cluster, job_id)
            assert fast == pytest.approx(slow, rel=1e-9, abs=1e-9), (label, job_id)
            checked += 1
    assert checked > 90


@pytest.mark.parametrize("label", sorted(POLICIES))
@pytest.mark.parametrize(
    ("seed", "fractional", "gpus", "share"), [(21, False, 8, 1.0), (22, True, 6.5, 0.4)]
)
def test_the_reused_forecast_agrees_with_a_fresh_replay(label, seed, fractional, gpus, share):
    # exact sizes: the predictor keeps one forecast across arrivals; some arrivals go
    # unpredicted (as with the artifact's prediction share), so it admits several at once
    name, params = POLICIES[label]
    cluster = Cluster(ClusterConfig(gpus=gpus), make_policy(name, **params))
    predictor = CompletionPredictor(cluster)
    rng = np.random.default_rng(seed)
    checked = 0
    for job in _workload(seed, 0.0, fractional):
        while cluster.next_event_time() <= job.arrival:
            cluster.advance(cluster.next_event_time())
        cluster.submit(job, job.arrival)
        if rng.random() >= share:
            continue
        active = cluster.active_job_ids()
        for job_id in [job.job_id, *rng.choice(active, size=min(2, len(active))).tolist()]:
            fast = predictor.predict(job_id)
            slow = replay_completion_time(cluster, job_id)
            assert fast == pytest.approx(slow, rel=1e-9, abs=1e-9), (label, job_id)
            checked += 1
    assert checked > 30


@pytest.mark.parametrize(
    ("seed", "fractional", "gpus"), [(31, False, 8), (32, True, 6.5), (33, False, 3)]
)
def test_the_fair_level_replay_of_max_min_agrees_with_the_straightforward_one(
    seed, fractional, gpus
):
    cluster = Cluster(ClusterConfig(gpus=gpus), make_policy("maxmin"))
    rng = np.random.default_rng(seed)
    checked = 0
    for job in _workload(seed, 0.0, fractional):
        while cluster.next_event_time() <= job.arrival:
            cluster.advance(cluster.next_event_time())
        cluster.submit(job, job.arrival)
        active = cluster.active_job_ids()
        for job_id in {job.job_id, *rng.choice(active, size=min(3, len(active))).tolist()}:
            fast = predict_completion_time(cluster, job_id)
            slow = replay_completion_time(cluster, job_id)
            assert fast == pytest.approx(slow, rel=1e-9, abs=1e-9), job_id
            checked += 1
    assert checked > 90
