"""Driving a search: ask the optimizer, score what the store does not know yet (on a local
process pool or through the replicas' work queue), tell, persist, repeat; then the front.

A search is resumable because the optimizer is deterministic for its seed and every score is
stored under (workload, configuration hash) before it is told: re-running a stopped search
asks the same candidates, and only the ones never scored are simulated.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from llmproxy.optimizer.pcs.evaluation import evaluate_mapping, failed_metrics
from llmproxy.optimizer.pcs.front import non_dominated, presets
from llmproxy.optimizer.pcs.objectives import ObjectiveError, parse_objectives
from llmproxy.optimizer.pcs.search import ALGORITHMS, Budget, make_optimizer
from llmproxy.optimizer.pcs.space import SPACES, Candidate, SearchSpace
from llmproxy.optimizer.pcs.workload import WorkloadSpec, load_jobs
from llmproxy.optimizer.repository import Evaluation, SearchRecord, SearchRepository
from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "CandidateEvaluator",
    "PoolEvaluator",
    "Progress",
    "SearchOutcome",
    "create_search",
    "finish_search",
    "make_process_pool",
    "new_search_id",
    "run_search",
]

log = structlog.get_logger(__name__)

#: a candidate's simulation is tried this many times before it is stored as failed
MAX_ATTEMPTS = 3

#: (workload mapping, candidate mapping) -> metrics; what an executor runs
EvaluateFn = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, float]]


def new_search_id() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def make_process_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes started with ``spawn``: forking a process that runs gRPC and NATS
    threads is unsafe."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


class CandidateEvaluator(Protocol):
    """Gets candidates scored and stored; returns when every one is in the repository."""

    async def evaluate(self, record: SearchRecord, candidates: Sequence[Candidate]) -> None: ...


@dataclass
class PoolEvaluator:
    """Scores candidates on an executor (a process pool) of this machine.

    A simulation that raises is tried again, ``max_attempts`` times in all; then the
    candidate is stored as failed (NaN metrics and the error: the worst objective values
    to the search, never on a front) and the search goes on. A broken executor (a worker
    process died) is not the candidate's fault: it propagates, the search stops as failed
    and can be resumed."""

    repository: SearchRepository
    executor: Executor
    evaluated_by: str = "local"
    max_attempts: int = MAX_ATTEMPTS
    #: the function the executor runs (picklable for a process pool)
    evaluate_fn: EvaluateFn = evaluate_mapping

    async def evaluate(self, record: SearchRecord, candidates: Sequence[Candidate]) -> None:
        loop = asyncio.get_running_loop()
        spec = record.workload.to_mapping()

        async def one(candidate: Candidate) -> None:
            error: str | None = None
            for attempt in range(1, self.max_attempts + 1):
                try:
                    metrics = await loop.run_in_executor(
                        self.executor, self.evaluate_fn, spec, candidate.to_mapping()
                    )
                    break
                except BrokenExecutor:
                    raise
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning(
                        "optimizer.evaluation_failed",
                        search_id=record.search_id,
                        candidate=candidate.config_hash,
                        attempt=attempt,
                        of=self.max_attempts,
                        error=error,
                    )
            else:
                metrics = failed_metrics(self.max_attempts)
            await self.repository.add_evaluation(
                record.workload.key,
                candidate,
                metrics,
                evaluated_by=self.evaluated_by,
                error=error if metrics.get("failed") == 1.0 else None,
            )

        await asyncio.gather(*(one(c) for c in candidates))


@dataclass(frozen=True, slots=True)
class Progress:
    search_id: str
    generation: int
    generations: int
    #: distinct configurations scored so far for this search
    evaluated: int
    #: of which simulated now (the rest came from the store)
    simulated: int
    budget: int
    elapsed_seconds: float


@dataclass
class SearchOutcome:
    record: SearchRecord
    points: list[Evaluation]
    front: list[Evaluation]
    presets: dict[str, Evaluation]
    simulated: int
    reused: int
    wall_seconds: float
    #: (evaluations asked so far, seconds) after each generation
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def failed(self) -> list[Evaluation]:
        """Points whose evaluation kept failing (stored NaN; on no front)."""
        return [p for p in self.points if p.failed]


ProgressCallback = Callable[[Progress], Awaitable[None] | None]


async def run_search(
    repository: SearchRepository,
    search_id: str,
    evaluator: CandidateEvaluator,
    *,
    on_progress: ProgressCallback | None = None,
) -> SearchOutcome:
    """Run (or resume) the stored search ``search_id`` to its last generation."""
    record = await repository.get(search_id)
    if record.state != "running":
        await repository.restart(search_id)
    started = time.perf_counter()
    try:
        outcome = await _run(repository, record, evaluator, on_progress, started)
    except Exception as exc:
        await repository.finish(search_id, error=f"{type(exc).__name__}: {exc}")
        raise
    return outcome


async def _run(
    repository: SearchRepository,
    record: SearchRecord,
    evaluator: CandidateEvaluator,
    on_progress: ProgressCallback | None,
    started: float,
) -> SearchOutcome:
    jobs = await asyncio.to_thread(load_jobs, record.workload)
    space = SearchSpace.build(record.space, [j.believed_size for j in jobs], record.workload.gpus)
    budget = Budget(record.population, record.generations)
    optimizer = make_optimizer(record.algorithm, space, record.objectives, budget, record.seed)
    key = record.workload.key
    simulated = reused = 0
    history: list[tuple[int, float]] = []
    asked = 0
    while not optimizer.done:
        candidates = optimizer.ask()
        unique = {c.config_hash: c for c in candidates}
        known = await repository.evaluations(key, unique)
        missing = [c for h, c in unique.items() if h not in known]
        reused += len(unique) - len(missing)
        if missing:
            await evaluator.evaluate(record, missing)
            known.update(await repository.evaluations(key, [c.config_hash for c in missing]))
            simulated += len(missing)
        lost = [h for h in unique if h not in known]
        if lost:
            raise RuntimeError(f"evaluations missing after scoring: {', '.join(lost[:5])}")
        await repository.add_points(record.search_id, optimizer.generation, unique)
        optimizer.tell([known[c.config_hash] for c in candidates])
        asked += len(candidates)
        history.append((asked, time.perf_counter() - started))
        evaluated = await repository.set_progress(record.search_id, optimizer.generation)
        if on_progress is not None:
            result = on_progress(
                Progress(
                    search_id=record.search_id,
                    generation=optimizer.generation,
                    generations=budget.generations,
                    evaluated=evaluated,
                    simulated=simulated,
                    budget=budget.evaluations,
                    elapsed_seconds=time.perf_counter() - started,
                )
            )
            if result is not None:
                await result
    return await finish_search(
        repository, record.search_id, simulated, reused, time.perf_counter() - started, history
    )


async def finish_search(
    repository: SearchRepository,
    search_id: str,
    simulated: int = 0,
    reused: int = 0,
    wall_seconds: float = 0.0,
    history: list[tuple[int, float]] | None = None,
) -> SearchOutcome:
    """Compute and store the front and presets of every point the search evaluated."""
    record = await repository.get(search_id)
    points = await repository.points(search_id)
    metrics = [p.metrics for p in points]
    front_index = non_dominated(metrics, record.objectives)
    front = [points[i] for i in front_index]
    chosen = presets([p.metrics for p in front], record.objectives)
    preset_points = {name: front[i] for name, i in chosen.items()}
    await repository.set_front(
        search_id,
        [p.config_hash for p in front],
        {name: p.config_hash for name, p in preset_points.items()},
    )
    await repository.finish(search_id)
    record = await repository.get(search_id)
    points = await repository.points(search_id)
    front = [p for p in points if p.on_front]
    preset_points = {name: p for p in points for name in p.presets}
    return SearchOutcome(
        record=record,
        points=points,
        front=front,
        presets=preset_points,
        simulated=simulated,
        reused=reused,
        wall_seconds=wall_seconds,
        history=history or [],
    )


async def create_search(
    repository: SearchRepository,
    *,
    workload: WorkloadSpec,
    objectives: Sequence[str],
    budget: Budget,
    seed: int,
    algorithm: str = "nsga2",
    space: str = "compact",
    search_id: str | None = None,
) -> SearchRecord:
    """Validate and store a new search (state running, nothing evaluated).

    Raises:
        InvalidArgumentError: an unknown algorithm, space or objective (names the field).
    """
    if algorithm not in ALGORITHMS:
        raise InvalidArgumentError(
            f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}", field="algorithm"
        )
    if space not in SPACES:
        raise InvalidArgumentError(
            f"space {space!r} is not one of {', '.join(SPACES)}", field="space"
        )
    try:
        objectives = parse_objectives(objectives)
    except ObjectiveError as exc:
        raise InvalidArgumentError(str(exc), field="objectives") from exc
    return await repository.create(
        search_id=search_id or new_search_id(),
        algorithm=algorithm,
        space=space,
        objectives=objectives,
        workload=workload,
        population=budget.population,
        generations=budget.generations,
        seed=seed,
    )
