import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    JOB_KIND_GPU: _ClassVar[JobKind]
    JOB_KIND_LLM_REQUEST: _ClassVar[JobKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_PREEMPTED: _ClassVar[JobState]
    JOB_STATE_COMPLETED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
JOB_KIND_UNSPECIFIED: JobKind
JOB_KIND_GPU: JobKind
JOB_KIND_LLM_REQUEST: JobKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_PREEMPTED: JobState
JOB_STATE_COMPLETED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class JobFeatures(_message.Message):
    __slots__ = ("model_name", "user", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    user: str
    extra: _containers.ScalarMap[str, str]
    def __init__(self, model_name: _Optional[str] = ..., user: _Optional[str] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobPrediction(_message.Message):
    __slots__ = ("predicted_start", "predicted_completion", "made_at", "reason")
    PREDICTED_START_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    MADE_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    predicted_start: _timestamp_pb2.Timestamp
    predicted_completion: _timestamp_pb2.Timestamp
    made_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, predicted_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predicted_completion: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., made_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "kind", "state", "pool", "owner", "gpu_demand", "size_seconds", "size_uncertainty", "size_estimated", "attained_seconds", "features", "class_index", "submitted_at", "started_at", "completed_at", "prediction", "first_prediction", "allocated_to", "allocated_gpus", "command", "error", "actual_size_seconds", "restarts", "share", "share_weight")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    GPU_DEMAND_FIELD_NUMBER: _ClassVar[int]
    SIZE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SIZE_UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    SIZE_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    ATTAINED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    FIRST_PREDICTION_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_TO_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_GPUS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_SIZE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    SHARE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobKind
    state: JobState
    pool: str
    owner: str
    gpu_demand: int
    size_seconds: float
    size_uncertainty: float
    size_estimated: bool
    attained_seconds: float
    features: JobFeatures
    class_index: int
    submitted_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    prediction: JobPrediction
    first_prediction: JobPrediction
    allocated_to: _containers.RepeatedScalarFieldContainer[str]
    allocated_gpus: float
    command: str
    error: str
    actual_size_seconds: float
    restarts: int
    share: str
    share_weight: float
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., pool: _Optional[str] = ..., owner: _Optional[str] = ..., gpu_demand: _Optional[int] = ..., size_seconds: _Optional[float] = ..., size_uncertainty: _Optional[float] = ..., size_estimated: _Optional[bool] = ..., attained_seconds: _Optional[float] = ..., features: _Optional[_Union[JobFeatures, _Mapping]] = ..., class_index: _Optional[int] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prediction: _Optional[_Union[JobPrediction, _Mapping]] = ..., first_prediction: _Optional[_Union[JobPrediction, _Mapping]] = ..., allocated_to: _Optional[_Iterable[str]] = ..., allocated_gpus: _Optional[float] = ..., command: _Optional[str] = ..., error: _Optional[str] = ..., actual_size_seconds: _Optional[float] = ..., restarts: _Optional[int] = ..., share: _Optional[str] = ..., share_weight: _Optional[float] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("kind", "pool", "owner", "gpu_demand", "size_seconds", "features", "class_hint", "command", "idempotency_key", "share", "share_weight")
    KIND_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    GPU_DEMAND_FIELD_NUMBER: _ClassVar[int]
    SIZE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CLASS_HINT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    SHARE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    kind: JobKind
    pool: str
    owner: str
    gpu_demand: int
    size_seconds: float
    features: JobFeatures
    class_hint: str
    command: str
    idempotency_key: str
    share: str
    share_weight: float
    def __init__(self, kind: _Optional[_Union[JobKind, str]] = ..., pool: _Optional[str] = ..., owner: _Optional[str] = ..., gpu_demand: _Optional[int] = ..., size_seconds: _Optional[float] = ..., features: _Optional[_Union[JobFeatures, _Mapping]] = ..., class_hint: _Optional[str] = ..., command: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., share: _Optional[str] = ..., share_weight: _Optional[float] = ...) -> None: ...

class SubmitJobReply(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class JobRef(_message.Message):
    __slots__ = ("job_id", "owner")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    owner: str
    def __init__(self, job_id: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("pool", "states", "owner", "limit")
    POOL_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    pool: str
    states: _containers.RepeatedScalarFieldContainer[JobState]
    owner: str
    limit: int
    def __init__(self, pool: _Optional[str] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ..., owner: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListJobsReply(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class ClusterStateRequest(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: str
    def __init__(self, pool: _Optional[str] = ...) -> None: ...

class ExecutorInfo(_message.Message):
    __slots__ = ("executor_id", "pool", "gpus", "last_heartbeat", "alive")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    pool: str
    gpus: int
    last_heartbeat: _timestamp_pb2.Timestamp
    alive: bool
    def __init__(self, executor_id: _Optional[str] = ..., pool: _Optional[str] = ..., gpus: _Optional[int] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., alive: _Optional[bool] = ...) -> None: ...

class ClusterState(_message.Message):
    __slots__ = ("pool", "capacity", "allocated", "queued", "running", "policy", "executors", "classes", "size_model")
    POOL_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SIZE_MODEL_FIELD_NUMBER: _ClassVar[int]
    pool: str
    capacity: int
    allocated: float
    queued: int
    running: int
    policy: str
    executors: _containers.RepeatedCompositeFieldContainer[ExecutorInfo]
    classes: _containers.RepeatedCompositeFieldContainer[WfqClassState]
    size_model: SizeModelInfo
    def __init__(self, pool: _Optional[str] = ..., capacity: _Optional[int] = ..., allocated: _Optional[float] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., policy: _Optional[str] = ..., executors: _Optional[_Iterable[_Union[ExecutorInfo, _Mapping]]] = ..., classes: _Optional[_Iterable[_Union[WfqClassState, _Mapping]]] = ..., size_model: _Optional[_Union[SizeModelInfo, _Mapping]] = ...) -> None: ...

class WfqClassState(_message.Message):
    __slots__ = ("size_boundary_seconds", "weight", "queued", "running")
    SIZE_BOUNDARY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    size_boundary_seconds: float
    weight: float
    queued: int
    running: int
    def __init__(self, size_boundary_seconds: _Optional[float] = ..., weight: _Optional[float] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ...) -> None: ...

class SizeModelInfo(_message.Message):
    __slots__ = ("trained_on", "mean_abs_pct_error")
    TRAINED_ON_FIELD_NUMBER: _ClassVar[int]
    MEAN_ABS_PCT_ERROR_FIELD_NUMBER: _ClassVar[int]
    trained_on: int
    mean_abs_pct_error: float
    def __init__(self, trained_on: _Optional[int] = ..., mean_abs_pct_error: _Optional[float] = ...) -> None: ...

class RegisterExecutorRequest(_message.Message):
    __slots__ = ("executor_id", "pool", "gpus", "kind")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    pool: str
    gpus: int
    kind: str
    def __init__(self, executor_id: _Optional[str] = ..., pool: _Optional[str] = ..., gpus: _Optional[int] = ..., kind: _Optional[str] = ...) -> None: ...

class RegisterExecutorReply(_message.Message):
    __slots__ = ("heartbeat_interval",)
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval: _duration_pb2.Duration
    def __init__(self, heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("job_id", "attained_seconds", "finished", "failed", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTAINED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attained_seconds: float
    finished: bool
    failed: bool
    error: str
    def __init__(self, job_id: _Optional[str] = ..., attained_seconds: _Optional[float] = ..., finished: _Optional[bool] = ..., failed: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("executor_id", "progress", "wait")
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    executor_id: str
    progress: _containers.RepeatedCompositeFieldContainer[JobProgress]
    wait: _duration_pb2.Duration
    def __init__(self, executor_id: _Optional[str] = ..., progress: _Optional[_Iterable[_Union[JobProgress, _Mapping]]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("job_id", "gpu_indices", "command", "remaining_seconds")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_INDICES_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    REMAINING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    gpu_indices: _containers.RepeatedScalarFieldContainer[int]
    command: str
    remaining_seconds: float
    def __init__(self, job_id: _Optional[str] = ..., gpu_indices: _Optional[_Iterable[int]] = ..., command: _Optional[str] = ..., remaining_seconds: _Optional[float] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("assignments",)
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...
