"""Workload input: trace files, synthetic CDF workloads, and clear errors for bad input."""

from __future__ import annotations

import pytest

from llmproxy.optimizer.pcs.evaluation import evaluate_candidate
from llmproxy.optimizer.pcs.space import Candidate
from llmproxy.optimizer.pcs.workload import WorkloadError, WorkloadSpec, load_jobs
from llmproxy.scheduler.core import ClusterConfig, make_policy
from llmproxy.scheduler.sim import paper_config, read_trace, simulate, summarize


def test_trace_slice_loads_the_first_jobs() -> None:
    spec = WorkloadSpec("trace", "0e4a51", limit=50)
    jobs = load_jobs(spec)
    assert len(jobs) == 50
    assert [j.job_id for j in jobs] == [j.job_id for j in read_trace(spec.trace_file(), 50)]


def test_unknown_trace_names_the_known_ones() -> None:
    with pytest.raises(WorkloadError, match=r"unknown trace 'nope'.*known: .*0e4a51"):
        WorkloadSpec("trace", "nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "trace", "source": "0e4a51", "limit": 0}, "jobs limit must be in"),
        ({"kind": "trace", "source": "0e4a51", "gpus": 0}, "cluster gpus"),
        ({"kind": "trace", "source": "0e4a51", "prediction_share": 2.0}, "prediction share"),
        ({"kind": "synthetic", "source": "service=nope"}, "no service CDF"),
        ({"kind": "synthetic", "source": "colour=red"}, "keys .*colour.* unknown"),
        ({"kind": "history", "source": "pool-a"}, "history is empty"),
        ({"kind": "cloud"}, "kind 'cloud' is not one of"),
    ],
)
def test_bad_workloads_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        WorkloadSpec(**kwargs)  # type: ignore[arg-type]


def test_synthetic_workload_is_seeded() -> None:
    spec = WorkloadSpec("synthetic", "service=philly,interarrival=0e4a51,jobs=40", seed=3)
    again = WorkloadSpec("synthetic", "service=philly,interarrival=0e4a51,jobs=40", seed=3)
    other = WorkloadSpec("synthetic", "service=philly,interarrival=0e4a51,jobs=40", seed=4)
    assert len(load_jobs(spec)) == 40
    assert [j.size for j in load_jobs(spec)] == [j.size for j in load_jobs(again)]
    assert [j.size for j in load_jobs(spec)] != [j.size for j in load_jobs(other)]
    assert spec.key == again.key != other.key


def test_history_rows_become_jobs() -> None:
    spec = WorkloadSpec("history", "pool-a", rows=((10.0, 100.0, 2.0), (0.0, 50.0, 1.0)))
    jobs = load_jobs(spec)
    assert [(j.arrival, j.size, j.demand) for j in jobs] == [(0.0, 50.0, 1.0), (10.0, 100.0, 2.0)]


def test_evaluation_is_the_simulators_result_and_the_gpu_cap_matters() -> None:
    spec = WorkloadSpec("trace", "0e4a51", limit=200)
    config = paper_config("0e4a51", "pred")
    metrics = evaluate_candidate(spec, Candidate(config))
    direct = summarize(
        simulate(load_jobs(spec), ClusterConfig(64), make_policy("wfq", config=config))
    )
    assert metrics["jct_mean"] == pytest.approx(direct.jct_mean)
    assert metrics["error_mean"] == pytest.approx(direct.error_mean)
    capped = evaluate_candidate(spec, Candidate(config, max_job_gpus=1))
    assert capped["jct_mean"] != pytest.approx(metrics["jct_mean"])
