import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmproxy.v1 import events_pb2 as _events_pb2
from llmproxy.v1 import scheduler_pb2 as _scheduler_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetProfilesRequest(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, models: _Optional[_Iterable[str]] = ...) -> None: ...

class GetProfilesReply(_message.Message):
    __slots__ = ("profiles",)
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[_events_pb2.ModelProfile]
    def __init__(self, profiles: _Optional[_Iterable[_Union[_events_pb2.ModelProfile, _Mapping]]] = ...) -> None: ...

class EstimateJobSizeRequest(_message.Message):
    __slots__ = ("features", "gpu_demand")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    GPU_DEMAND_FIELD_NUMBER: _ClassVar[int]
    features: _scheduler_pb2.JobFeatures
    gpu_demand: int
    def __init__(self, features: _Optional[_Union[_scheduler_pb2.JobFeatures, _Mapping]] = ..., gpu_demand: _Optional[int] = ...) -> None: ...

class EstimateJobSizeReply(_message.Message):
    __slots__ = ("size_seconds", "uncertainty_seconds", "estimator", "history_jobs")
    SIZE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    HISTORY_JOBS_FIELD_NUMBER: _ClassVar[int]
    size_seconds: float
    uncertainty_seconds: float
    estimator: str
    history_jobs: int
    def __init__(self, size_seconds: _Optional[float] = ..., uncertainty_seconds: _Optional[float] = ..., estimator: _Optional[str] = ..., history_jobs: _Optional[int] = ...) -> None: ...

class UsageRecord(_message.Message):
    __slots__ = ("request_id", "tenant_id", "app_id", "user_id", "conversation_id", "model", "input_tokens", "output_tokens", "cost_nanousd", "saved_nanousd", "latency_seconds", "cache_hit", "created_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    SAVED_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    app_id: str
    user_id: str
    conversation_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_nanousd: int
    saved_nanousd: int
    latency_seconds: float
    cache_hit: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., app_id: _Optional[str] = ..., user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., model: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_nanousd: _Optional[int] = ..., saved_nanousd: _Optional[int] = ..., latency_seconds: _Optional[float] = ..., cache_hit: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListUsageRequest(_message.Message):
    __slots__ = ("tenant_id", "request_id", "limit")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    request_id: str
    limit: int
    def __init__(self, tenant_id: _Optional[str] = ..., request_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListUsageReply(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[UsageRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[UsageRecord, _Mapping]]] = ...) -> None: ...
