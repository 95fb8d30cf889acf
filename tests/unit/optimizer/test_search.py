"""The ask/tell search loop on a cheap stand-in objective (no simulation): NSGA-II starts
from a Latin hypercube, never spends a slot on a configuration it already asked, is
deterministic for a seed, and ranks a failed evaluation last."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from llmproxy.optimizer.pcs.search import Budget, Nsga2Search, Nsga2Settings, make_optimizer
from llmproxy.optimizer.pcs.space import Candidate, SearchSpace

SIZES = np.geomspace(10, 1e7, 500)
OBJECTIVES = ("mean_error", "mean_jct")


def score(candidate: Candidate) -> dict[str, float]:
    """More classes and a steeper decay: faster but less predictable (a toy trade-off)."""
    config = candidate.config
    steep = float(config.weights[0])
    return {
        "error_mean": config.num_classes * (0.5 + steep),
        "jct_mean": 1000.0 / (config.num_classes * (0.5 + steep)),
    }


def run(optimizer: Nsga2Search) -> list[list[Candidate]]:
    asked = []
    while not optimizer.done:
        batch = optimizer.ask()
        asked.append(batch)
        optimizer.tell([score(c) for c in batch])
    return asked


def hashes(batches: Sequence[Sequence[Candidate]]) -> list[str]:
    return [c.config_hash for batch in batches for c in batch]


def test_nsga2_never_asks_a_configuration_twice_and_is_deterministic() -> None:
    space = SearchSpace.build("compact", SIZES, gpus=64)
    budget = Budget(population=12, generations=6)
    asked = run(Nsga2Search(space, OBJECTIVES, budget, seed=4))
    every = hashes(asked)
    assert len(every) == len(set(every))  # distinct decoded configurations, all generations
    assert len(every) >= budget.evaluations - 6  # the budget is spent on new points
    assert hashes(run(Nsga2Search(space, OBJECTIVES, budget, seed=4))) == every
    assert hashes(run(Nsga2Search(space, OBJECTIVES, budget, seed=5))) != every


def test_without_the_distinct_rule_configurations_repeat() -> None:
    # the former behaviour, kept as a setting: the comparison the benchmark makes
    space = SearchSpace.build("compact", SIZES, gpus=64)
    settings = Nsga2Settings(sampling="random", distinct=False)
    every = hashes(run(Nsga2Search(space, OBJECTIVES, Budget(12, 6), seed=4, settings=settings)))
    assert len(every) > len(set(every))


def test_the_first_generation_is_a_latin_hypercube_over_the_class_count() -> None:
    space = SearchSpace.build("compact", SIZES, gpus=64)
    optimizer = Nsga2Search(space, OBJECTIVES, Budget(population=12, generations=2), seed=1)
    first = optimizer.ask()
    assert len(first) == 12
    x = optimizer._pending.get("X")
    # each knob has one sample in each twelfth of its range
    for column in x.T:
        assert sorted(np.floor(column * 12).astype(int)) == list(range(12))
    assert len({c.config.num_classes for c in first}) >= 5


def test_a_failed_evaluation_ranks_last() -> None:
    space = SearchSpace.build("compact", SIZES, gpus=64)
    optimizer = make_optimizer("nsga2", space, OBJECTIVES, Budget(8, 2), seed=2)
    assert isinstance(optimizer, Nsga2Search)
    batch = optimizer.ask()
    failed_x = optimizer._pending.get("X")[0].copy()
    nan = float("nan")
    metrics = [score(c) for c in batch]
    metrics[0] = {"error_mean": nan, "jct_mean": nan}  # as stored for a failed evaluation
    optimizer.tell(metrics)
    population = optimizer._algorithm.pop
    (failed,) = [ind for ind in population if np.array_equal(ind.X, failed_x)]
    assert failed.F.tolist() == [300.0, 300.0]  # the worst value an objective can have
    assert failed.get("rank") == max(ind.get("rank") for ind in population)
    assert all(ind.get("rank") < failed.get("rank") for ind in population if ind is not failed)
    assert optimizer.ask()  # the search goes on


def test_bad_settings_are_refused() -> None:
    space = SearchSpace.build("compact", SIZES, gpus=64)
    with pytest.raises(ValueError, match="sampling 'sobol' is not lhs or random"):
        Nsga2Search(space, OBJECTIVES, Budget(8, 2), seed=0, settings=Nsga2Settings("sobol"))
