"""Core records <-> protobuf messages of ``scheduler.proto`` (used by the servicer and by the
events the service publishes)."""

from __future__ import annotations

import math

from llmproxy.scheduler.live import (
    Executor,
    JobKind,
    JobState,
    LiveJob,
    PoolState,
    Prediction,
)
from llmproxy.scheduler.timebase import TimeBase
from llmproxy.v1 import scheduler_pb2

__all__ = [
    "KINDS_FROM_PROTO",
    "STATES_FROM_PROTO",
    "STATES_TO_PROTO",
    "cluster_state_to_proto",
    "job_to_proto",
]

STATES_TO_PROTO = {
    JobState.QUEUED: scheduler_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: scheduler_pb2.JOB_STATE_RUNNING,
    JobState.PREEMPTED: scheduler_pb2.JOB_STATE_PREEMPTED,
    JobState.COMPLETED: scheduler_pb2.JOB_STATE_COMPLETED,
    JobState.FAILED: scheduler_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: scheduler_pb2.JOB_STATE_CANCELLED,
}
STATES_FROM_PROTO = {v: k for k, v in STATES_TO_PROTO.items()}
KINDS_TO_PROTO = {
    JobKind.GPU: scheduler_pb2.JOB_KIND_GPU,
    JobKind.LLM_REQUEST: scheduler_pb2.JOB_KIND_LLM_REQUEST,
}
KINDS_FROM_PROTO = {
    scheduler_pb2.JOB_KIND_UNSPECIFIED: JobKind.GPU,
    **{v: k for k, v in KINDS_TO_PROTO.items()},
}
_FEATURE_FIELDS = ("model_name", "user")


def _prediction(message: scheduler_pb2.JobPrediction, p: Prediction, time: TimeBase) -> None:
    if p.start is not None:
        message.predicted_start.FromDatetime(time.to_wall(p.start))
    if p.completion is not None:
        message.predicted_completion.FromDatetime(time.to_wall(p.completion))
    message.made_at.FromDatetime(time.to_wall(p.made_at))
    message.reason = p.reason


def job_to_proto(job: LiveJob, time: TimeBase) -> scheduler_pb2.Job:
    message = scheduler_pb2.Job(
        job_id=job.job_id,
        kind=KINDS_TO_PROTO[job.kind],
        state=STATES_TO_PROTO[job.state],
        pool=job.pool,
        owner=job.owner,
        gpu_demand=job.demand,
        size_seconds=job.size,
        size_uncertainty=job.size_uncertainty,
        size_estimated=job.size_estimated,
        attained_seconds=job.attained,
        class_index=job.class_index,
        command=job.command,
        error=job.error,
        actual_size_seconds=job.actual_size or 0.0,
        restarts=job.restarts,
        share=job.share,
        share_weight=job.share_weight,
    )
    features = dict(job.features)
    message.features.model_name = features.pop("model_name", "")
    message.features.user = features.pop("user", "")
    message.features.extra.update(features)
    message.submitted_at.FromDatetime(time.to_wall(job.submitted_at))
    if job.started_at is not None:
        message.started_at.FromDatetime(time.to_wall(job.started_at))
    if job.completed_at is not None:
        message.completed_at.FromDatetime(time.to_wall(job.completed_at))
    if job.prediction is not None:
        _prediction(message.prediction, job.prediction, time)
    if job.first_prediction is not None:
        _prediction(message.first_prediction, job.first_prediction, time)
    if job.executor_id:
        message.allocated_to.append(job.executor_id)
        message.allocated_gpus = float(job.demand)
    return message


def features_from_proto(features: scheduler_pb2.JobFeatures) -> dict[str, str]:
    out = dict(features.extra)
    for name in _FEATURE_FIELDS:
        value = getattr(features, name)
        if value:
            out[name] = value
    return out


def _executor(executor: Executor, time: TimeBase) -> scheduler_pb2.ExecutorInfo:
    info = scheduler_pb2.ExecutorInfo(
        executor_id=executor.executor_id,
        pool=executor.pool,
        gpus=executor.gpus,
        alive=executor.alive,
    )
    info.last_heartbeat.FromDatetime(time.to_wall(executor.last_heartbeat))
    return info


def cluster_state_to_proto(
    state: PoolState,
    jobs: list[LiveJob],
    time: TimeBase,
    *,
    size_model: tuple[int, float] = (0, 0.0),
) -> scheduler_pb2.ClusterState:
    config = state.config
    policy = "fifo" if config.num_classes == 1 else f"wfq ({config.num_classes} classes)"
    message = scheduler_pb2.ClusterState(
        pool=state.pool,
        capacity=state.capacity,
        allocated=float(state.allocated),
        queued=state.queued,
        running=state.running,
        policy=policy,
        executors=[_executor(e, time) for e in state.executors],
    )
    for index, (bound, weight) in enumerate(zip(config.thresholds, config.weights, strict=True)):
        members = [j for j in jobs if j.class_index == index]
        message.classes.append(
            scheduler_pb2.WfqClassState(
                size_boundary_seconds=math.inf if math.isinf(bound) else bound,
                weight=float(weight),
                queued=sum(1 for j in members if j.state is not JobState.RUNNING),
                running=sum(1 for j in members if j.state is JobState.RUNNING),
            )
        )
    message.size_model.trained_on, message.size_model.mean_abs_pct_error = size_model
    return message
