"""gRPC adapter of the Scheduler service: protobuf in, :class:`SchedulerEngine` calls,
protobuf out. Validation that needs no state happens here; the rest in the core."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf.duration_pb2 import Duration

from llmproxy.platform.errors import InvalidArgumentError, NotFoundError
from llmproxy.scheduler.convert import (
    KINDS_FROM_PROTO,
    STATES_FROM_PROTO,
    cluster_state_to_proto,
    features_from_proto,
    job_to_proto,
)
from llmproxy.scheduler.engine import SchedulerEngine, SubmitRequest
from llmproxy.scheduler.live import Progress
from llmproxy.v1 import scheduler_pb2, scheduler_pb2_grpc

__all__ = ["SchedulerServicer"]

#: ListJobs returns at most this many jobs
MAX_LIST = 1000


def _job_id(ref: scheduler_pb2.JobRef) -> str:
    if not ref.job_id:
        raise InvalidArgumentError("job_id is required", field="job_id")
    return ref.job_id


async def _owned_job_id(engine: SchedulerEngine, ref: scheduler_pb2.JobRef) -> str:
    """The job id, after checking that a ref naming an owner names that owner's job.

    Another owner's job gets the very answer of an unknown id, so ids cannot be probed.
    """
    job_id = _job_id(ref)
    if ref.owner and (await engine.get(job_id)).owner != ref.owner:
        raise NotFoundError(f"unknown job {job_id!r}")
    return job_id


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServicer):
    def __init__(self, engine: SchedulerEngine, *, heartbeat_interval: float) -> None:
        self._engine = engine
        self._heartbeat_interval = heartbeat_interval

    @property
    def _time(self):  # type: ignore[no-untyped-def]
        return self._engine.time

    async def SubmitJob(
        self, request: scheduler_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.SubmitJobReply:
        self._engine.serving()
        if request.kind not in KINDS_FROM_PROTO:
            raise InvalidArgumentError(f"unknown job kind {request.kind}", field="kind")
        if not request.pool:
            raise InvalidArgumentError("pool is required", field="pool")
        if request.gpu_demand < 1:
            raise InvalidArgumentError(
                f"gpu_demand must be at least 1 GPU (or slot), got {request.gpu_demand}",
                field="gpu_demand",
            )
        if request.size_seconds < 0 or request.size_seconds != request.size_seconds:
            raise InvalidArgumentError(
                f"size_seconds must be > 0 (or 0 to estimate it), got {request.size_seconds}",
                field="size_seconds",
            )
        reserved = [k for k in request.features.extra if k.startswith("__")]
        if reserved:
            raise InvalidArgumentError(
                f"feature names starting with '__' are reserved, got {sorted(reserved)}",
                field="features",
            )
        if request.share_weight < 0 or request.share_weight != request.share_weight:
            raise InvalidArgumentError(
                f"share_weight must be > 0 (or 0 for 1), got {request.share_weight}",
                field="share_weight",
            )
        job = await self._engine.submit(
            SubmitRequest(
                pool=request.pool,
                demand=request.gpu_demand,
                size=request.size_seconds or None,
                kind=KINDS_FROM_PROTO[request.kind],
                owner=request.owner,
                features=features_from_proto(request.features),
                command=request.command,
                idempotency_key=request.idempotency_key,
                share=request.share,
                # a share without a weight gets the default weight, 1
                share_weight=request.share_weight or (1.0 if request.share else 0.0),
            )
        )
        return scheduler_pb2.SubmitJobReply(job=job_to_proto(job, self._time))

    async def GetJob(
        self, request: scheduler_pb2.JobRef, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        self._engine.serving()
        job_id = await _owned_job_id(self._engine, request)
        return job_to_proto(await self._engine.get(job_id), self._time)

    async def ListJobs(
        self, request: scheduler_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ListJobsReply:
        self._engine.serving()
        if request.limit < 0:
            raise InvalidArgumentError(f"limit must be >= 0, got {request.limit}", field="limit")
        unknown = [s for s in request.states if s not in STATES_FROM_PROTO]
        if unknown:
            raise InvalidArgumentError(f"unknown job states {unknown}", field="states")
        jobs = await self._engine.list_jobs(
            pool=request.pool,
            states=[STATES_FROM_PROTO[s] for s in request.states],
            owner=request.owner,
            limit=min(request.limit or 100, MAX_LIST),
        )
        return scheduler_pb2.ListJobsReply(jobs=[job_to_proto(j, self._time) for j in jobs])

    async def CancelJob(
        self, request: scheduler_pb2.JobRef, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        self._engine.serving()
        job_id = await _owned_job_id(self._engine, request)
        return job_to_proto(await self._engine.cancel(job_id), self._time)

    async def WatchJob(
        self, request: scheduler_pb2.JobRef, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scheduler_pb2.Job]:
        self._engine.serving()
        async for job in self._engine.watch(await _owned_job_id(self._engine, request)):
            yield job_to_proto(job, self._time)

    async def GetClusterState(
        self, request: scheduler_pb2.ClusterStateRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ClusterState:
        self._engine.serving()
        pool = request.pool or "default"
        state, jobs = self._engine.pool_state(pool)
        return cluster_state_to_proto(state, jobs, self._time, size_model=self._engine.sizes.info)

    async def RegisterExecutor(
        self, request: scheduler_pb2.RegisterExecutorRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.RegisterExecutorReply:
        self._engine.serving()
        await self._engine.register_executor(
            request.executor_id, request.pool, request.gpus, request.kind or "process"
        )
        interval = Duration()
        interval.FromNanoseconds(int(self._heartbeat_interval * 1e9))
        return scheduler_pb2.RegisterExecutorReply(heartbeat_interval=interval)

    async def Heartbeat(
        self, request: scheduler_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.HeartbeatReply:
        self._engine.serving()
        if not request.executor_id:
            raise InvalidArgumentError("executor_id is required", field="executor_id")
        progress = [
            Progress(
                job_id=p.job_id,
                attained=p.attained_seconds,
                finished=p.finished,
                failed=p.failed,
                error=p.error,
            )
            for p in request.progress
        ]
        wait = request.wait.ToNanoseconds() / 1e9
        if wait < 0:
            raise InvalidArgumentError(f"wait must be >= 0, got {wait}s", field="wait")
        # never hold a reply past the heartbeat interval: the executor must stay alive
        wait = min(wait, self._heartbeat_interval)
        assignments = await self._engine.heartbeat(request.executor_id, progress, wait=wait)
        return scheduler_pb2.HeartbeatReply(
            assignments=[
                scheduler_pb2.Assignment(
                    job_id=a.job_id,
                    gpu_indices=list(a.gpu_indices),
                    command=a.command,
                    remaining_seconds=a.remaining,
                )
                for a in assignments
            ]
        )
