"""The job-size regressor: learns sizes from history, says how unsure it is, reports its error."""

from __future__ import annotations

import numpy as np
import pytest

from llmproxy.profiler.job_size import JobSizeModel, JobSizeSample, NotEnoughHistoryError

BASE = {"resnet": 1_000.0, "bert": 5_000.0, "gpt": 20_000.0}


def history(count: int, seed: int = 0) -> list[JobSizeSample]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        model = str(rng.choice(list(BASE)))
        gpus = int(rng.choice([1, 2, 4]))
        size = BASE[model] * gpus * float(rng.lognormal(0.0, 0.1))
        samples.append(JobSizeSample(model, f"user{i % 3}", gpus, size))
    return samples


@pytest.fixture(scope="module")
def model() -> JobSizeModel:
    """One fit shared by the tests that only read it (a fit takes a few seconds)."""
    return JobSizeModel.fit(history(150))


def test_sizes_are_learnt_per_model_and_demand(model: JobSizeModel) -> None:
    for name, gpus in [("resnet", 1), ("bert", 2), ("gpt", 4)]:
        estimate = model.estimate(JobSizeSample(name, "user1", gpus))
        assert estimate.size == pytest.approx(BASE[name] * gpus, rel=0.25)
        assert 0 < estimate.uncertainty < estimate.size


def test_an_unseen_model_gets_a_much_wider_uncertainty(model: JobSizeModel) -> None:
    known = model.estimate(JobSizeSample("bert", "user1", 1))
    unseen = model.estimate(JobSizeSample("llama-70b", "stranger", 1))

    assert unseen.uncertainty / unseen.size > 2 * known.uncertainty / known.size


def test_the_cross_validated_error_is_reported(model: JobSizeModel) -> None:
    assert model.trained_on == 150
    assert 0 < model.mean_abs_pct_error < 30  # 10% noise on the sizes


def test_too_little_history_is_refused_with_the_count() -> None:
    with pytest.raises(NotEnoughHistoryError, match="3 completed jobs"):
        JobSizeModel.fit(history(3))
