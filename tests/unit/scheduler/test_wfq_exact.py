"""WFQ-PCS fluid shares checked by hand, in exact arithmetic."""

from fractions import Fraction as F

import pytest

from llmproxy.scheduler.core import (
    Cluster,
    ClusterConfig,
    WfqConfig,
    make_policy,
    predict_completion_time,
    weighted_water_fill,
)

from .factories import active_jobs, jobs_from, two_class_wfq


def shares(config: WfqConfig, demand, job_class, capacity):
    policy = make_policy("wfq", config=config)
    return policy.allocate(active_jobs(demand, job_class=job_class), capacity).tolist()


def test_weights_three_quarters_one_quarter_on_one_gpu():
    # one small and one large job, each able to use the whole GPU
    got = shares(two_class_wfq(), [F(1), F(1)], [0, 1], F(1))
    assert got == [F(3, 4), F(1, 4)]


def test_fifo_inside_a_class_and_demand_caps_on_four_gpus():
    # class 0 (weight 3/4 -> 3 GPUs): jobs of demand 2, 2, 1 in arrival order; class 1 (1 GPU)
    got = shares(two_class_wfq(), [F(2), F(2), F(1), F(4)], [0, 0, 0, 1], F(4))
    assert got == [F(2), F(1), F(0), F(1)]


def test_capacity_a_class_cannot_use_goes_to_the_others_by_weight():
    # three classes weighted 1/2, 1/3, 1/6 on 6 GPUs; class 0 wants only 1 GPU of its 3:
    # the 2 spare GPUs split 2:1 between classes 1 and 2 -> 2+4/3 and 1+2/3
    config = WfqConfig(thresholds=(10, 100, float("inf")), weights=(F(1, 2), F(1, 3), F(1, 6)))
    got = shares(config, [F(1), F(6), F(6)], [0, 1, 2], F(6))
    assert got == [F(1), F(10, 3), F(5, 3)]
    assert sum(got) == 6


def test_an_idle_class_leaves_its_whole_share_to_the_busy_one():
    got = shares(two_class_wfq(), [F(1), F(1)], [1, 1], F(1))
    assert got == [F(1), F(0)]


def test_cascading_redistribution_water_fill():
    # weights 1/2, 1/4, 1/4 of 8 GPUs; demands 1, 1, 20: class 0 and 1 capped, class 2 gets 6
    assert weighted_water_fill([F(1), F(1), F(20)], [F(1, 2), F(1, 4), F(1, 4)], F(8)) == [
        F(1),
        F(1),
        F(6),
    ]


def test_total_demand_below_capacity_is_served_in_full():
    assert weighted_water_fill([F(1), F(2)], [F(9, 10), F(1, 10)], F(8)) == [F(1), F(2)]


def test_hand_checked_completion_times_on_one_gpu():
    # small job (5 GPU-s) and large job (10 GPU-s) at t=0, weights 3/4 : 1/4 on 1 GPU.
    # small runs at 3/4 until t = 5 / (3/4) = 20/3; by then large did 20/3 * 1/4 = 5/3,
    # then large runs alone: 10 - 5/3 = 25/3 more -> ends at 20/3 + 25/3 = 15.
    cluster = Cluster(ClusterConfig(gpus=1), make_policy("wfq", config=two_class_wfq(threshold=5)))
    for job in jobs_from([(0, 5, 1), (0, 10, 1)]):
        cluster.submit(job, 0.0)
    assert predict_completion_time(cluster, 0) == pytest.approx(float(F(20, 3)), rel=1e-12)
    assert predict_completion_time(cluster, 1) == pytest.approx(15.0, rel=1e-12)
    assert [c.job_id for c in cluster.advance(cluster.next_event_time())] == [0]
    assert cluster.now == pytest.approx(20 / 3)
    assert cluster.remaining_work(1) == pytest.approx(25 / 3)
    assert cluster.next_event_time() == pytest.approx(15.0)


def test_classes_use_the_estimated_size_not_the_true_one():
    policy = make_policy("wfq", config=two_class_wfq(threshold=100))
    assert policy.job_class(100.0) == 0
    assert policy.job_class(100.5) == 1
