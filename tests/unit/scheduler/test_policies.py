"""Baseline policies and the policy factory on small hand-checked cases."""

import json
import math
from fractions import Fraction as F

import pytest

from llmproxy.scheduler.core import (
    POLICY_NAMES,
    ConfigError,
    WfqConfig,
    make_policy,
    max_min_fair,
)

from .factories import DATA_DIR, active_jobs


def alloc(name, demand, capacity, **columns):
    return make_policy(name).allocate(active_jobs(demand, **columns), capacity).tolist()


def test_fifo_serves_in_submission_order_up_to_demand():
    assert alloc("fifo", [2, 3, 4], 4) == [2, 2, 0]


def test_srsf_serves_least_remaining_first_ties_by_arrival():
    assert alloc("srsf", [2, 2, 2, 2], 5, remaining=[30, 10, 20, 10]) == [0, 2, 1, 2]


def test_las_serves_least_attained_first():
    assert alloc("las", [1, 1, 1], 2, attained=[5, 0, 3]) == [0, 1, 1]


def test_max_min_fair_caps_small_demands_and_levels_the_rest():
    got = max_min_fair(active_jobs([F(1), F(5), F(5)]).demand, F(7))
    assert got.tolist() == [F(1), F(3), F(3)]


def test_afs_with_more_jobs_than_gpus_gives_the_shortest_one_gpu_each():
    assert alloc("afs", [4, 4, 4], 2, remaining=[30, 10, 20]) == [0, 1, 1]


def test_afs_levels_whole_gpus_and_gives_spares_to_the_shortest():
    # level 2 each uses 6 of 7; the spare GPU goes to the job with least remaining work
    assert alloc("afs", [4, 4, 4], 7, remaining=[30, 10, 20]) == [2, 3, 2]


def test_themis_gives_gpus_to_the_worst_finish_time_fairness_first():
    policy = make_policy("themis", quantum=60)
    jobs = active_jobs([2, 2], remaining=[10, 10], now=100)
    jobs.arrival[:] = [0, 90]  # job 0 has waited longest: worse rho
    assert policy.allocate(jobs, 2).tolist() == [2, 0]
    assert policy.reallocation_interval == 60


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_factory_builds_every_policy(name):
    policy = make_policy(name)
    assert policy.name == name


def test_factory_aliases_and_rejects_unknown_names_and_parameters():
    assert make_policy("Tiresias").name == "srsf"
    with pytest.raises(ConfigError, match="unknown policy"):
        make_policy("lottery")
    with pytest.raises(ConfigError, match="no parameters"):
        make_policy("fifo", quantum=3)


def test_wfq_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="weights"):
        WfqConfig(thresholds=(10, math.inf), weights=(F(1, 2), F(1, 3)))
    with pytest.raises(ConfigError, match="thresholds"):
        WfqConfig(thresholds=(10, 5, math.inf), weights=(F(1, 3),) * 3)
    with pytest.raises(ConfigError, match="unbounded"):
        WfqConfig(thresholds=(10,), weights=(F(1),))


def test_wfq_config_round_trips_through_a_mapping():
    config = WfqConfig(thresholds=(10, math.inf), weights=(F(19, 20), F(1, 20)))
    assert WfqConfig.from_mapping(config.to_mapping()) == config


def test_every_published_config_parses_with_exact_weights():
    path = DATA_DIR / "paper_configs.json"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared PCS data not checked out)")
    configs = json.loads(path.read_text())["configs"]
    for key, entry in configs.items():
        config = WfqConfig.from_mapping(entry["raw"])
        assert sum(config.weights) == 1, key
        assert config.thresholds[-1] == math.inf
    pred = WfqConfig.from_mapping(configs["PCS_config_0e4a51_pred.pkl"]["raw"])
    assert pred.thresholds == (5758, 4600151, math.inf)
    assert pred.weights == (F(19, 20), F(6, 125), F(1, 500))
