"""Parked waiting jobs and the fast Themis-like greedy change no decision: both are checked
against the reference paths (every job decided at every event; the literal greedy loop)."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmproxy.scheduler.core import Cluster, ClusterConfig, Job, WfqConfig, make_policy
from llmproxy.scheduler.core.policies import (
    ActiveJobs,
    themis_greedy,
    themis_greedy_reference,
)
from llmproxy.scheduler.core.predictor import replay_completion_time

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WFQ = WfqConfig((50.0, 500.0, math.inf), (Fraction(6, 10), Fraction(3, 10), Fraction(1, 10)))
PARKING_POLICIES = ("fifo", "srsf", "las", "afs", "wfq")


def _policy(name: str):
    return make_policy(name, config=WFQ) if name == "wfq" else make_policy(name)


@st.composite
def busy_workloads(draw):
    """Bursty arrivals on a small cluster, so that queues form and jobs get parked; equal
    sizes and arrival instants are common, to exercise every tie."""
    n = draw(st.integers(min_value=1, max_value=30))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 5.0, 20.0]), min_size=n, max_size=n))
    sizes = draw(
        st.lists(
            st.one_of(st.sampled_from([10.0, 40.0, 100.0]), st.floats(1, 1_000)),
            min_size=n,
            max_size=n,
        )
    )
    fractional = draw(st.booleans())
    demand_values = st.floats(0.25, 4.0) if fractional else st.sampled_from([1.0, 1.0, 2.0, 4.0])
    demands = draw(st.lists(demand_values, min_size=n, max_size=n))
    errors = draw(st.lists(st.sampled_from([None, 0.5, 1.0, 2.0]), min_size=n, max_size=n))
    arrival = np.cumsum(gaps)
    return [
        Job(i, float(a), s, d, None if e is None or e == 1.0 else s * e)
        for i, (a, s, d, e) in enumerate(zip(arrival, sizes, demands, errors, strict=True))
    ]


def _drive(cluster: Cluster, jobs: list[Job], on_submit) -> list[tuple[int, float, float]]:
    done = []
    for job in jobs:
        while cluster.next_event_time() <= job.arrival:
            done += cluster.advance(cluster.next_event_time())
        done += cluster.submit(job, job.arrival)
        on_submit(cluster, job)
    while cluster.active_count:
        done += cluster.advance(cluster.next_event_time())
    return [(d.job_id, d.time, d.contention) for d in done]


@FAST
@given(
    jobs=busy_workloads(),
    name=st.sampled_from(PARKING_POLICIES),
    gpus=st.sampled_from([1.0, 2.0, 3.0, 4.5, 8.0]),
)
def test_parking_changes_no_allocation_completion_or_prediction(jobs, name, gpus):
    seen: dict[str, list] = {"parked": [], "reference": []}

    def record(label):
        def on_submit(cluster, job):
            allocations = cluster.allocations()
            oldest = allocations[0].job_id
            seen[label].append(
                (
                    allocations,
                    cluster.next_event_time(),
                    replay_completion_time(cluster, job.job_id),
                    replay_completion_time(cluster, oldest),
                )
            )

        return on_submit

    policy = _policy(name)
    parked = Cluster(ClusterConfig(gpus=gpus), policy, park_slack=0)
    reference = Cluster(ClusterConfig(gpus=gpus), policy, park_waiting=False)
    assert _drive(parked, jobs, record("parked")) == _drive(reference, jobs, record("reference"))
    # exact equality: the parked decision is the reference decision, bit for bit
    assert seen["parked"] == seen["reference"]


def test_parked_jobs_stay_visible_in_every_query():
    cluster = Cluster(ClusterConfig(gpus=2), make_policy("fifo"), park_slack=0)
    for i in range(6):
        cluster.submit(Job(i, 0.0, 10.0 * (i + 1), 1.0), 0.0)
    allocations = cluster.allocations()
    assert cluster.parked_count > 0
    assert [a.job_id for a in allocations] == list(range(6))
    assert [a.gpus for a in allocations] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert cluster.active_job_ids() == list(range(6))
    assert cluster.active_count == 6
    assert cluster.is_active(5) and not cluster.is_active(6)
    assert cluster.remaining_work(5) == 60.0
    ids, remaining, _, _ = cluster.believed_columns()
    assert ids.tolist() == list(range(6)) and remaining.tolist() == [10.0 * k for k in range(1, 7)]
    # a parked job comes back when GPUs free up, and finishes on time
    finished = []
    while cluster.active_count:
        finished += cluster.advance(cluster.next_event_time())
    assert [d.job_id for d in finished] == list(range(6))
    assert finished[-1].time == pytest.approx(20 + 40 + 60)  # job 5 follows jobs 1 and 3


def test_an_unknown_job_is_still_named_with_parked_jobs():
    from llmproxy.scheduler.core import UnknownJobError

    cluster = Cluster(ClusterConfig(gpus=1), make_policy("srsf"), park_slack=0)
    for i in range(4):
        cluster.submit(Job(i, 0.0, 5.0, 1.0), 0.0)
    cluster.allocations()
    with pytest.raises(UnknownJobError):
        cluster.remaining_work(42)


@st.composite
def themis_columns(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    fractional = draw(st.booleans())
    demand_values = st.floats(0.2, 6.0) if fractional else st.sampled_from([1.0, 2.0, 4.0, 8.0])
    demand = np.array(draw(st.lists(demand_values, min_size=n, max_size=n)))
    size = np.array(draw(st.lists(st.sampled_from([10.0, 100.0, 1e3]), min_size=n, max_size=n)))
    done = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 0.9]), min_size=n, max_size=n)))
    arrival = np.array(draw(st.lists(st.sampled_from([0.0, 50.0, 90.0]), min_size=n, max_size=n)))
    contention = np.array(draw(st.lists(st.sampled_from([1.0, 2.0, 7.5]), min_size=n, max_size=n)))
    capacity = draw(st.sampled_from([1.0, 3.0, 6.5, 8.0, 64.0]))
    jobs = ActiveJobs(
        now=100.0,
        arrival=arrival,
        size=size,
        remaining=size * (1 - done),
        demand=demand,
        job_class=np.zeros(n, dtype=np.int64),
        attained=size * done,
        contention=contention,
    )
    return jobs, capacity


@settings(max_examples=60, deadline=None)
@given(columns=themis_columns())
def test_fast_themis_greedy_equals_the_literal_loop(columns):
    jobs, capacity = columns
    assert (
        themis_greedy(jobs, capacity).tolist() == themis_greedy_reference(jobs, capacity).tolist()
    )


def test_fast_themis_greedy_equals_the_literal_loop_on_many_jobs():
    # more jobs than the greedy ranks up front, so it must rank the rest when it runs out
    rng = np.random.default_rng(5)
    n = 600
    size = rng.choice([10.0, 100.0], size=n)
    demand = rng.choice([1.0, 8.0, 16.0], size=n)
    jobs = ActiveJobs(
        now=10.0,
        arrival=np.zeros(n),
        size=size,
        remaining=size,
        demand=demand,
        job_class=np.zeros(n, dtype=np.int64),
        attained=np.zeros(n),
        contention=np.full(n, 3.0),
    )
    for capacity in (7.0, 64.0, 700.0):
        assert (
            themis_greedy(jobs, capacity).tolist()
            == themis_greedy_reference(jobs, capacity).tolist()
        )
