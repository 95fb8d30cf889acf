"""Driving a search end to end on a small trace slice, stored in SQLite: deterministic for a
seed, every configuration scored once, and a stopped search resumes without re-running."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pytest

from llmproxy.optimizer.pcs.evaluation import evaluate_mapping
from llmproxy.optimizer.pcs.search import Budget
from llmproxy.optimizer.pcs.space import Candidate
from llmproxy.optimizer.pcs.workload import WorkloadSpec
from llmproxy.optimizer.repository import SearchRecord, SearchRepository
from llmproxy.optimizer.runner import PoolEvaluator, Progress, create_search, run_search
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.errors import InvalidArgumentError, NotFoundError

WORKLOAD = WorkloadSpec("trace", "0e4a51", limit=80)


@pytest.fixture
async def repository(sqlite_db_url: str) -> AsyncIterator[SearchRepository]:
    engine = create_engine(sqlite_db_url)
    yield SearchRepository(session_factory(engine))
    await engine.dispose()


class CountingEvaluator(PoolEvaluator):
    """The product's pool evaluator on threads, counting what it simulates; can be told to
    fail at a generation (a crash in the middle of a search)."""

    def __init__(self, repository: SearchRepository, fail_at_call: int | None = None) -> None:
        super().__init__(repository, ThreadPoolExecutor(2), evaluated_by="test")
        self.simulated: list[str] = []
        self.calls = 0
        self.fail_at_call = fail_at_call

    async def evaluate(self, record: SearchRecord, candidates: Sequence[Candidate]) -> None:
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise RuntimeError("worker lost")
        self.simulated.extend(c.config_hash for c in candidates)
        await super().evaluate(record, candidates)


async def start(repository: SearchRepository, seed: int = 1, algorithm: str = "nsga2") -> str:
    record = await create_search(
        repository,
        workload=WORKLOAD,
        objectives=["mean_error", "mean_jct"],
        budget=Budget(population=8, generations=3),
        seed=seed,
        algorithm=algorithm,
    )
    return record.search_id


async def test_search_stores_every_point_the_front_and_presets(
    repository: SearchRepository,
) -> None:
    evaluator = CountingEvaluator(repository)
    progress: list[Progress] = []
    outcome = await run_search(
        repository, await start(repository), evaluator, on_progress=progress.append
    )
    assert outcome.record.state == "completed"
    assert [p.generation for p in progress] == [1, 2, 3]
    hashes = [p.config_hash for p in outcome.points]
    assert len(hashes) == len(set(hashes)) == outcome.record.evaluated
    assert sorted(evaluator.simulated) == sorted(hashes)  # each configuration simulated once
    assert outcome.front and all(p.on_front for p in outcome.front)
    assert set(outcome.presets) == {"pred", "bal", "jct"}
    pred, jct = outcome.presets["pred"].metrics, outcome.presets["jct"].metrics
    assert pred["error_mean"] <= jct["error_mean"] and jct["jct_mean"] <= pred["jct_mean"]


async def test_same_seed_same_search_and_scores_are_reused(repository: SearchRepository) -> None:
    first = await run_search(repository, await start(repository), CountingEvaluator(repository))
    again_evaluator = CountingEvaluator(repository)
    again = await run_search(repository, await start(repository), again_evaluator)
    assert [p.config_hash for p in again.points] == [p.config_hash for p in first.points]
    assert again_evaluator.simulated == []  # same workload: every score came from the store
    assert {p.config_hash for p in again.front} == {p.config_hash for p in first.front}
    other = await run_search(
        repository, await start(repository, seed=2), CountingEvaluator(repository)
    )
    assert {p.config_hash for p in other.points} != {p.config_hash for p in first.points}


async def test_a_stopped_search_resumes_without_re_running(repository: SearchRepository) -> None:
    search_id = await start(repository)
    crashing = CountingEvaluator(repository, fail_at_call=2)
    with pytest.raises(RuntimeError, match="worker lost"):
        await run_search(repository, search_id, crashing)
    failed = await repository.get(search_id)
    assert failed.state == "failed" and "worker lost" in (failed.error or "")
    assert failed.generation == 1
    resumed_evaluator = CountingEvaluator(repository)
    resumed = await run_search(repository, search_id, resumed_evaluator)
    assert resumed.record.state == "completed"
    assert not set(crashing.simulated) & set(resumed_evaluator.simulated)
    assert resumed.reused >= len(crashing.simulated)
    # the same points as an uninterrupted search with this seed
    fresh = await run_search(repository, await start(repository), CountingEvaluator(repository))
    assert {p.config_hash for p in resumed.points} == {p.config_hash for p in fresh.points}


async def test_random_search_uses_the_same_budget(repository: SearchRepository) -> None:
    outcome = await run_search(
        repository, await start(repository, algorithm="random"), CountingEvaluator(repository)
    )
    assert outcome.record.algorithm == "random"
    assert 1 <= len(outcome.points) <= 24


async def test_bad_search_requests_are_refused_and_store_nothing(
    repository: SearchRepository,
) -> None:
    for kwargs, field in (
        ({"algorithm": "annealing"}, "algorithm"),
        ({"space": "huge"}, "space"),
        ({"objectives": ["mean_error", "speed"]}, "objectives"),
    ):
        arguments = {
            "workload": WORKLOAD,
            "objectives": ["mean_error", "mean_jct"],
            "budget": Budget(8, 2),
            "seed": 0,
            **kwargs,
        }
        with pytest.raises(InvalidArgumentError) as caught:
            await create_search(repository, **arguments)  # type: ignore[arg-type]
        assert caught.value.field == field
    assert await repository.recent() == []
    with pytest.raises(NotFoundError, match="no search 's-missing'"):
        await repository.get("s-missing")


class FlakySimulator:
    """The real simulation, except that configurations with 3+ classes always raise and the
    first attempt at every 2-class configuration raises once (a transient fault)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, spec: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, float]:
        candidate = Candidate.from_mapping(data)
        with self._lock:
            self.calls[candidate.config_hash] += 1
            attempt = self.calls[candidate.config_hash]
        classes = candidate.config.num_classes
        if classes >= 3:
            raise RuntimeError(f"simulator crashed on {classes} classes")
        if classes == 2 and attempt == 1:
            raise TimeoutError("transient")
        return evaluate_mapping(spec, data)


async def test_a_failing_candidate_is_retried_then_stored_as_failed_and_the_search_completes(
    repository: SearchRepository,
) -> None:
    flaky = FlakySimulator()
    evaluator = PoolEvaluator(
        repository, ThreadPoolExecutor(2), evaluated_by="test", evaluate_fn=flaky
    )
    outcome = await run_search(repository, await start(repository), evaluator)
    assert outcome.record.state == "completed"
    failed = {p.config_hash: p for p in outcome.failed}
    assert failed, "the search asked for configurations with 3+ classes"
    for point in outcome.points:
        classes = point.candidate.config.num_classes
        if classes >= 3:  # bounded retries, then stored as failed: NaN, on no front
            assert point.config_hash in failed
            assert flaky.calls[point.config_hash] == evaluator.max_attempts == 3
            assert point.error == f"RuntimeError: simulator crashed on {classes} classes"
            assert math.isnan(point.metrics["jct_mean"]) and point.metrics["attempts"] == 3
            assert not point.on_front and not point.presets
        else:  # a transient failure costs one retry; the score is kept
            assert point.config_hash not in failed and point.error is None
            assert flaky.calls[point.config_hash] == (2 if classes == 2 else 1)
            assert math.isfinite(point.metrics["jct_mean"])
    assert outcome.front and set(outcome.presets) == {"pred", "bal", "jct"}
    # stored as failed: a later search on the workload does not run them again
    again = PoolEvaluator(repository, ThreadPoolExecutor(2), evaluated_by="t", evaluate_fn=flaky)
    before = sum(flaky.calls.values())
    rerun = await run_search(repository, await start(repository), again)
    assert sum(flaky.calls.values()) == before
    assert {p.config_hash for p in rerun.failed} == set(failed)


async def test_a_broken_pool_stops_the_search_as_failed_not_its_candidates(
    repository: SearchRepository,
) -> None:
    def broken(spec: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, float]:
        raise BrokenProcessPool("a worker process died")

    search_id = await start(repository)
    evaluator = PoolEvaluator(repository, ThreadPoolExecutor(1), evaluate_fn=broken)
    with pytest.raises(BrokenProcessPool):
        await run_search(repository, search_id, evaluator)
    record = await repository.get(search_id)
    assert record.state == "failed" and "worker process died" in (record.error or "")
    assert await repository.evaluators(WORKLOAD.key) == {}  # nothing stored as failed
