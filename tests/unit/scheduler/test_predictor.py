"""Completion-time predictions: exact where the theory says so."""

import numpy as np
import pytest

from llmproxy.scheduler.core import (
    POLICY_NAMES,
    Cluster,
    ClusterConfig,
    Job,
    make_policy,
    predict_completion_time,
)
from llmproxy.scheduler.sim import inject_size_error, prediction_error, read_trace, trace_path

from .factories import DATA_DIR, jobs_from, random_jobs, run, two_class_wfq


def test_fifo_predictions_are_exact_on_a_random_workload():
    jobs = random_jobs(np.random.default_rng(1), 300)
    result = run(jobs, "fifo", gpus=8)
    assert np.nanmax(prediction_error(result)) < 1e-6


def test_fifo_predictions_are_exact_on_a_real_trace():
    path = trace_path("2869ce", DATA_DIR)
    if not path.exists():
        pytest.skip(f"{path} is absent (shared PCS data not checked out)")
    result = run(read_trace(path, limit=400), "fifo", gpus=64)
    assert np.nanmax(prediction_error(result)) < 1e-6


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_the_last_job_is_predicted_exactly_when_nothing_arrives_after_it(name):
    jobs = random_jobs(np.random.default_rng(2), 60)
    params = {"config": two_class_wfq(threshold=2_000)} if name == "wfq" else {}
    result = run(jobs, name, gpus=8, **params)
    assert result.predicted[-1] == pytest.approx(result.completion[-1], rel=1e-9)


def test_every_policy_predicts_a_lone_burst_exactly():
    # all jobs arrive at once: no job arrives after any prediction's replay starts... except
    # the ones submitted in the same instant after it, so check the last of the burst only
    jobs = jobs_from([(0, 40, 2), (0, 10, 1), (0, 30, 4), (0, 20, 1)])
    for name in POLICY_NAMES:
        result = run(jobs, name, gpus=4)
        assert result.predicted[-1] == pytest.approx(result.completion[-1]), name


def test_predictions_use_estimated_sizes():
    job = Job(0, 0.0, size=100.0, demand=1.0, estimated_size=150.0)
    cluster = Cluster(ClusterConfig(gpus=1), make_policy("fifo"))
    cluster.submit(job, 0.0)
    assert predict_completion_time(cluster, 0) == pytest.approx(150.0)
    assert cluster.next_event_time() == pytest.approx(100.0)


def test_size_errors_make_fifo_predictions_inexact_but_bounded():
    rng = np.random.default_rng(3)
    jobs = inject_size_error(random_jobs(rng, 200), 20.0, rng)
    error = prediction_error(run(jobs, "fifo", gpus=8))
    assert np.nanmean(error) > 0.1
    # a lone job's prediction is off by at most its own size error
    assert error[0] <= 100 * 0.2 / 0.8 + 1e-9


def test_the_replay_does_not_touch_the_live_state():
    cluster = Cluster(ClusterConfig(gpus=2), make_policy("srsf"))
    for job in jobs_from([(0, 40, 2), (0, 10, 1), (0, 30, 2)]):
        cluster.submit(job, 0.0)
    before = [a.gpus for a in cluster.allocations()], cluster.now
    predict_completion_time(cluster, 2)
    assert ([a.gpus for a in cluster.allocations()], cluster.now) == before
