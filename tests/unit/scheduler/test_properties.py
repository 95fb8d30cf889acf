"""Policy invariants, property-based."""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmproxy.scheduler.core import POLICY_NAMES, Job, WfqConfig, make_policy
from llmproxy.scheduler.core.policies import ActiveJobs

from .factories import run

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONFIG = WfqConfig.from_mapping(
    {"thresholds": [50, 500, "inf"], "weights": ["3/5", "3/10", "1/10"]}
)


def policy(name: str):
    return make_policy(name, config=CONFIG) if name == "wfq" else make_policy(name)


@st.composite
def job_columns(draw):
    n = draw(st.integers(min_value=1, max_value=25))
    demand = draw(st.lists(st.integers(1, 8), min_size=n, max_size=n))
    remaining = draw(st.lists(st.floats(1, 5_000), min_size=n, max_size=n))
    attained = draw(st.lists(st.floats(0, 5_000), min_size=n, max_size=n))
    capacity = draw(st.integers(1, 32))
    return np.array(demand, float), np.array(remaining), np.array(attained), capacity


@FAST
@given(columns=job_columns(), name=st.sampled_from(POLICY_NAMES))
def test_allocations_respect_capacity_and_demand_and_conserve_work(columns, name):
    demand, remaining, attained, capacity = columns
    p = policy(name)
    jobs = ActiveJobs(
        now=1_000.0,
        arrival=np.linspace(0, 900, len(demand)),
        size=remaining + attained,
        remaining=remaining,
        demand=demand,
        job_class=np.array([p.job_class(s) for s in remaining + attained], dtype=np.int64),
        attained=attained,
        contention=np.full(len(demand), 2.0),
    )
    alloc = p.allocate(jobs, float(capacity))
    assert np.all(alloc >= -1e-12)
    assert np.all(alloc <= demand + 1e-9)
    assert alloc.sum() <= capacity + 1e-9
    # work conserving: nothing idles while some job wants more
    assert math.isclose(alloc.sum(), min(capacity, demand.sum()), rel_tol=1e-9, abs_tol=1e-9)


@st.composite
def workloads(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    gaps = draw(st.lists(st.floats(0, 300), min_size=n, max_size=n))
    sizes = draw(st.lists(st.floats(1, 3_000), min_size=n, max_size=n))
    demands = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    arrival = np.cumsum(gaps) - gaps[0]
    return [
        Job(i, float(a), s, float(d))
        for i, (a, s, d) in enumerate(zip(arrival, sizes, demands, strict=True))
    ]


@FAST
@given(jobs=workloads(), name=st.sampled_from(POLICY_NAMES), gpus=st.integers(1, 16))
def test_every_job_finishes_after_its_work_could_be_done(jobs, name, gpus):
    result = run(jobs, name, gpus=gpus, **({"config": CONFIG} if name == "wfq" else {}))
    assert not np.isnan(result.completion).any()
    # no job beats running alone at its demand (capped by the cluster)
    fastest = result.size / np.minimum(result.demand, gpus)
    assert np.all(result.jct >= fastest * (1 - 1e-9) - 1e-9)
    # with exact sizes the last job's prediction is its completion
    assert math.isclose(result.predicted[-1], result.completion[-1], rel_tol=1e-7, abs_tol=1e-6)


@FAST
@given(
    count=st.integers(2, 12),
    size=st.floats(1, 40),
    demand=st.integers(1, 4),
    gap=st.floats(0, 20),
    gpus=st.integers(1, 8),
)
def test_identical_jobs_in_one_class_finish_in_arrival_order(count, size, demand, gap, gpus):
    jobs = [Job(i, i * gap, size, float(demand)) for i in range(count)]
    result = run(jobs, "wfq", gpus=gpus, config=CONFIG)
    assert np.all(np.diff(result.completion) >= -1e-9)


@FAST
@given(jobs=workloads(), name=st.sampled_from(POLICY_NAMES), gpus=st.integers(1, 16))
def test_whole_gpu_mode_hands_out_whole_gpus_within_capacity(jobs, name, gpus):
    from llmproxy.scheduler.core import Cluster, ClusterConfig

    params = {"config": CONFIG} if name == "wfq" else {}
    cluster = Cluster(ClusterConfig(gpus=gpus, whole_gpus=True), make_policy(name, **params))
    for job in jobs:
        while cluster.next_event_time() <= job.arrival:
            cluster.advance(cluster.next_event_time())
        cluster.submit(job, job.arrival)
        gpus_given = np.array([a.gpus for a in cluster.allocations()])
        assert np.array_equal(gpus_given, np.round(gpus_given))
        assert gpus_given.sum() <= gpus
        demand = sum(j.demand for j in jobs if cluster.is_active(j.job_id))
        assert gpus_given.sum() == min(gpus, demand)
