"""gRPC adapter of the Optimizer service's PCS search calls: protobuf in, domain calls, out.

The router calls (TrainRouter, ActivateRouter, ListRouters) are delegated to
:class:`llmproxy.optimizer.router.servicer.RouterCalls`."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import structlog

from llmproxy.optimizer.apply import apply_point
from llmproxy.optimizer.pcs.objectives import DEFAULT_OBJECTIVES
from llmproxy.optimizer.pcs.search import Budget, BudgetError
from llmproxy.optimizer.pcs.workload import WorkloadError, WorkloadSpec
from llmproxy.optimizer.repository import Evaluation, SearchRecord, SearchRepository
from llmproxy.optimizer.router.servicer import RouterCalls
from llmproxy.optimizer.runner import CandidateEvaluator, Progress, create_search, run_search
from llmproxy.optimizer.work_queue import candidate_to_proto
from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.bus.subjects import SEARCH_COMPLETED, SEARCH_PROGRESS, SEARCH_REQUESTED
from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.v1 import events_pb2, optimizer_pb2, optimizer_pb2_grpc

__all__ = ["OBJECTIVE_ENUM", "OptimizerServicer", "workload_from_proto"]

log = structlog.get_logger(__name__)

#: proto enum value -> objective name
OBJECTIVE_ENUM = {
    optimizer_pb2.SEARCH_OBJECTIVE_MEAN_PREDICTION_ERROR: "mean_error",
    optimizer_pb2.SEARCH_OBJECTIVE_P99_PREDICTION_ERROR: "p99_error",
    optimizer_pb2.SEARCH_OBJECTIVE_MEAN_JCT: "mean_jct",
    optimizer_pb2.SEARCH_OBJECTIVE_P99_JCT: "p99_jct",
    optimizer_pb2.SEARCH_OBJECTIVE_MEAN_UNFAIRNESS: "mean_unfairness",
    optimizer_pb2.SEARCH_OBJECTIVE_P99_UNFAIRNESS: "p99_unfairness",
}
_ENUM_OF = {name: value for value, name in OBJECTIVE_ENUM.items()}
_STATES = {
    "running": optimizer_pb2.SEARCH_STATE_RUNNING,
    "completed": optimizer_pb2.SEARCH_STATE_COMPLETED,
    "failed": optimizer_pb2.SEARCH_STATE_FAILED,
}

#: a history workload: the pool's recent jobs as (arrival, size, demand) rows
HistoryLoader = Callable[
    [str, int | None], Coroutine[Any, Any, tuple[tuple[float, float, float], ...]]
]


async def workload_from_proto(
    source: optimizer_pb2.WorkloadSource, history: HistoryLoader | None = None
) -> WorkloadSpec:
    which = source.WhichOneof("source")
    common: dict[str, Any] = {
        "gpus": source.cluster_gpus or 64,
        "seed": source.seed,
        "limit": source.jobs_limit or None,
        "prediction_share": source.prediction_share or None,
    }
    try:
        if which == "trace_path":
            return WorkloadSpec("trace", source.trace_path, **common)
        if which == "synthetic_spec":
            return WorkloadSpec("synthetic", source.synthetic_spec, **common)
        if which == "history_pool":
            if history is None:
                raise InvalidArgumentError(
                    "workload from job history is not available: the scheduler's jobs table "
                    "is not read by this optimizer build",
                    field="workload.history_pool",
                )
            rows = await history(source.history_pool, common["limit"])
            return WorkloadSpec("history", source.history_pool, rows=rows, **common)
    except WorkloadError as exc:
        raise InvalidArgumentError(str(exc), field="workload") from exc
    raise InvalidArgumentError(
        "workload needs one of trace_path, synthetic_spec, history_pool", field="workload"
    )


def _point(point: Evaluation) -> optimizer_pb2.FrontPoint:
    metrics = {k: v for k, v in point.metrics.items() if not math.isnan(v)}
    return optimizer_pb2.FrontPoint(
        candidate_id=point.config_hash,
        config=candidate_to_proto(point.candidate),
        metrics=metrics,
        preset=",".join(point.presets),
    )


class OptimizerServicer(optimizer_pb2_grpc.OptimizerServicer):
    def __init__(
        self,
        repository: SearchRepository,
        bus: EventBus,
        evaluator: CandidateEvaluator,
        *,
        source: str,
        history: HistoryLoader | None = None,
        router: RouterCalls | None = None,
    ) -> None:
        self._router = router or RouterCalls(repository.sessions, bus, source=source)
        self._repository = repository
        self._bus = bus
        self._evaluator = evaluator
        self._source = source
        self._history = history
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    async def StartSearch(
        self, request: optimizer_pb2.StartSearchRequest, context: grpc.aio.ServicerContext
    ) -> optimizer_pb2.Search:
        if request.resume_search_id:
            record = await self._repository.get(request.resume_search_id)
            if request.resume_search_id in self._tasks:
                raise InvalidArgumentError(
                    f"search {record.search_id} is running on this replica",
                    field="resume_search_id",
                )
        else:
            unknown = [v for v in request.objectives if v not in OBJECTIVE_ENUM]
            if unknown:
                raise InvalidArgumentError(
                    f"unknown objective values {unknown}; known: {sorted(OBJECTIVE_ENUM)}",
                    field="objectives",
                )
            objectives = [OBJECTIVE_ENUM[v] for v in request.objectives] or list(DEFAULT_OBJECTIVES)
            try:
                budget = Budget(request.population or 24, request.generations or 10)
            except BudgetError as exc:
                raise InvalidArgumentError(str(exc), field="budget") from exc
            workload = await workload_from_proto(request.workload, self._history)
            record = await create_search(
                self._repository,
                workload=workload,
                objectives=objectives,
                budget=budget,
                seed=request.seed,
                algorithm=request.algorithm or "nsga2",
                space=request.space or "compact",
            )
        task = asyncio.create_task(self._run(record.search_id), name=f"search-{record.search_id}")
        self._tasks[record.search_id] = task
        return await self._search(record.search_id)

    async def _run(self, search_id: str) -> None:
        try:
            await publish_event(
                self._bus,
                SEARCH_REQUESTED,
                events_pb2.SearchRequested(meta=new_event_meta(self._source), search_id=search_id),
            )
            outcome = await run_search(
                self._repository, search_id, self._evaluator, on_progress=self._progress
            )
            await publish_event(
                self._bus,
                SEARCH_COMPLETED,
                events_pb2.SearchCompleted(
                    meta=new_event_meta(self._source),
                    search_id=search_id,
                    evaluated=len(outcome.points),
                    front_size=len(outcome.front),
                ),
            )
            log.info("optimizer.search_completed", search_id=search_id)
        except Exception:
            log.exception("optimizer.search_failed", search_id=search_id)
        finally:
            self._tasks.pop(search_id, None)

    async def _progress(self, progress: Progress) -> None:
        await publish_event(
            self._bus,
            SEARCH_PROGRESS,
            events_pb2.SearchProgress(
                meta=new_event_meta(self._source),
                search_id=progress.search_id,
                generation=progress.generation,
                evaluated=progress.evaluated,
            ),
        )

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _search(
        self, search_id: str, record: SearchRecord | None = None
    ) -> optimizer_pb2.Search:
        record = record or await self._repository.get(search_id)
        front = await self._repository.points(search_id, front_only=True)
        message = optimizer_pb2.Search(
            search_id=record.search_id,
            state=_STATES.get(record.state, optimizer_pb2.SEARCH_STATE_UNSPECIFIED),
            evaluated=record.evaluated,
            generation=record.generation,
            front=[_point(p) for p in front],
            error=record.error or "",
            generations=record.generations,
            population=record.population,
            objectives=[_ENUM_OF[o] for o in record.objectives if o in _ENUM_OF],
            workload=record.workload.describe(),
        )
        message.created_at.FromDatetime(record.created_at)
        return message

    async def GetSearch(
        self, request: optimizer_pb2.SearchRef, context: grpc.aio.ServicerContext
    ) -> optimizer_pb2.Search:
        if not request.search_id:
            raise InvalidArgumentError("search_id is required", field="search_id")
        return await self._search(request.search_id)

    async def ListSearches(
        self, request: optimizer_pb2.ListSearchesRequest, context: grpc.aio.ServicerContext
    ) -> optimizer_pb2.ListSearchesReply:
        if request.limit < 0 or request.limit > 1000:
            raise InvalidArgumentError("limit must be in 0..1000", field="limit")
        records = await self._repository.recent(request.limit or 20)
        return optimizer_pb2.ListSearchesReply(
            searches=[await self._search(r.search_id, r) for r in records]
        )

    async def ApplyConfig(
        self, request: optimizer_pb2.ApplyConfigRequest, context: grpc.aio.ServicerContext
    ) -> optimizer_pb2.ApplyConfigReply:
        if not request.search_id:
            raise InvalidArgumentError("search_id is required", field="search_id")
        which = request.WhichOneof("point")
        applied = await apply_point(
            self._repository,
            self._bus,
            request.search_id,
            preset=request.preset if which == "preset" else None,
            candidate_id=request.candidate_id if which == "candidate_id" else None,
            pool=request.pool,
            source=self._source,
        )
        return optimizer_pb2.ApplyConfigReply(policy_id=applied.policy_id, config=applied.event.wfq)

    # -- router calls (delegated) -------------------------------------------------------------

    async def TrainRouter(
        self, request: optimizer_pb2.TrainRouterRequest, context: grpc.aio.ServicerContext
    ) -> optimizer_pb2.RouterModel:
        return await self._router.train(request)

    async def ActivateRouter(
        self, request: optimizer_pb2.RouterRef, context: grpc.aio.ServicerContext
    ) -> optimizer_pb2.RouterModel:
        return await self._router.activate(request)

    async def ListRouters(
        self, request: optimizer_pb2.ListRoutersRequest, context: grpc.aio.ServicerContext
    ) -> optimizer_pb2.ListRoutersReply:
        return await self._router.list()
