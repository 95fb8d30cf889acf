"""The event-driven core: submit / next_event_time / advance, whole GPUs, copies."""

import math

import numpy as np
import pytest

from llmproxy.scheduler.core import (
    Cluster,
    ClusterConfig,
    Job,
    SchedulerError,
    UnknownJobError,
    amdahl,
    make_policy,
    round_to_whole_gpus,
)


def cluster(policy="fifo", gpus=4, **kwargs):
    return Cluster(ClusterConfig(gpus=gpus, **kwargs), make_policy(policy))


def test_an_empty_cluster_has_no_next_event():
    assert math.isinf(cluster().next_event_time())
    assert cluster().advance(10.0) == []


def test_a_job_runs_at_its_demand_and_completes_on_time():
    c = cluster()
    c.submit(Job(7, 0.0, size=100.0, demand=2.0), 0.0)
    assert c.next_event_time() == pytest.approx(50.0)
    assert c.advance(20.0) == []
    assert c.remaining_work(7) == pytest.approx(60.0)
    done = c.advance(50.0)
    assert [(d.job_id, d.time) for d in done] == [(7, 50.0)]
    assert c.active_count == 0


def test_an_arrival_takes_effect_at_its_time_and_reports_completions_on_the_way():
    c = cluster(gpus=1)
    c.submit(Job(0, 0.0, 10.0, 1.0), 0.0)
    done = c.submit(Job(1, 12.0, 10.0, 1.0), 12.0)
    assert [d.job_id for d in done] == [0]
    assert c.next_event_time() == pytest.approx(22.0)


def test_time_never_goes_back_and_unknown_jobs_are_named():
    c = cluster()
    c.submit(Job(0, 5.0, 10.0, 1.0), 5.0)
    with pytest.raises(SchedulerError):
        c.advance(1.0)
    with pytest.raises(SchedulerError):
        c.submit(Job(0, 6.0, 10.0, 1.0), 6.0)
    with pytest.raises(UnknownJobError):
        c.remaining_work(99)


def test_whole_gpu_switch_rounds_fluid_shares():
    fluid = cluster("maxmin", gpus=4)
    whole = cluster("maxmin", gpus=4, whole_gpus=True)
    for c in (fluid, whole):
        for i in range(3):
            c.submit(Job(i, 0.0, 10.0, 4.0), 0.0)
    assert [a.gpus for a in fluid.allocations()] == pytest.approx([4 / 3] * 3)
    assert [a.gpus for a in whole.allocations()] == [2.0, 1.0, 1.0]


def test_round_to_whole_gpus_keeps_the_total_and_the_caps():
    alloc = np.array([0.5, 1.5, 2.0, 0.0])
    demand = np.array([1.0, 2.0, 2.0, 1.0])
    rounded = round_to_whole_gpus(alloc, demand)
    assert rounded.sum() == 4.0
    assert np.all(rounded <= demand)


def test_a_speedup_curve_slows_multi_gpu_jobs():
    c = Cluster(ClusterConfig(gpus=4), make_policy("fifo"), speedup=amdahl(0.5))
    c.submit(Job(0, 0.0, 100.0, 3.0), 0.0)
    # 3 GPUs at serial fraction 1/2 -> 3 / (1 + 0.5 * 2) = 1.5 units of work a second
    assert c.next_event_time() == pytest.approx(100 / 1.5)


def test_believed_copy_replays_estimates_and_leaves_the_original_alone():
    c = cluster(gpus=1)
    c.submit(Job(0, 0.0, size=10.0, demand=1.0, estimated_size=20.0), 0.0)
    twin = c.believed_copy()
    assert twin.remaining_work(0) == pytest.approx(20.0)
    twin.advance(twin.next_event_time())
    assert c.remaining_work(0) == pytest.approx(10.0)
    assert c.next_event_time() == pytest.approx(10.0)


def test_themis_re_decides_every_quantum():
    c = Cluster(ClusterConfig(gpus=1), make_policy("themis", quantum=5.0))
    c.submit(Job(0, 0.0, 100.0, 1.0), 0.0)
    assert c.next_event_time() == pytest.approx(5.0)
    c.advance(5.0)
    assert c.next_event_time() == pytest.approx(10.0)
