import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmproxy.v1 import common_pb2 as _common_pb2
from llmproxy.v1 import scheduler_pb2 as _scheduler_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeedbackKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_KIND_UNSPECIFIED: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_RATING: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_WRONG: _ClassVar[FeedbackKind]
    FEEDBACK_KIND_ESCALATE: _ClassVar[FeedbackKind]
FEEDBACK_KIND_UNSPECIFIED: FeedbackKind
FEEDBACK_KIND_RATING: FeedbackKind
FEEDBACK_KIND_WRONG: FeedbackKind
FEEDBACK_KIND_ESCALATE: FeedbackKind

class EventMeta(_message.Message):
    __slots__ = ("event_id", "occurred_at", "source", "trace_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at: _timestamp_pb2.Timestamp
    source: str
    trace_id: str
    def __init__(self, event_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., trace_id: _Optional[str] = ...) -> None: ...

class LlmCompleted(_message.Message):
    __slots__ = ("meta", "request_id", "scope", "choice", "usage", "cost", "cache", "context", "latency", "time_to_first_token", "task_category", "prompt", "answer", "finish_reason", "error", "error_message", "cache_policy", "cache_key", "eta", "user_prompt", "system_prompt")
    META_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TASK_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CACHE_POLICY_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    USER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    request_id: str
    scope: _common_pb2.Scope
    choice: _common_pb2.ModelChoice
    usage: _common_pb2.TokenUsage
    cost: _common_pb2.Cost
    cache: _common_pb2.CacheReport
    context: _common_pb2.ContextReport
    latency: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    task_category: str
    prompt: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    answer: str
    finish_reason: str
    error: bool
    error_message: str
    cache_policy: _common_pb2.CachePolicy
    cache_key: str
    eta: _common_pb2.Eta
    user_prompt: str
    system_prompt: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., request_id: _Optional[str] = ..., scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., choice: _Optional[_Union[_common_pb2.ModelChoice, _Mapping]] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[_Union[_common_pb2.Cost, _Mapping]] = ..., cache: _Optional[_Union[_common_pb2.CacheReport, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.ContextReport, _Mapping]] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., task_category: _Optional[str] = ..., prompt: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., answer: _Optional[str] = ..., finish_reason: _Optional[str] = ..., error: _Optional[bool] = ..., error_message: _Optional[str] = ..., cache_policy: _Optional[_Union[_common_pb2.CachePolicy, _Mapping]] = ..., cache_key: _Optional[str] = ..., eta: _Optional[_Union[_common_pb2.Eta, _Mapping]] = ..., user_prompt: _Optional[str] = ..., system_prompt: _Optional[str] = ...) -> None: ...

class LlmFeedback(_message.Message):
    __slots__ = ("meta", "request_id", "scope", "kind", "rating", "comment", "model", "cache_entry_id")
    META_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CACHE_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    request_id: str
    scope: _common_pb2.Scope
    kind: FeedbackKind
    rating: int
    comment: str
    model: str
    cache_entry_id: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., request_id: _Optional[str] = ..., scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., kind: _Optional[_Union[FeedbackKind, str]] = ..., rating: _Optional[int] = ..., comment: _Optional[str] = ..., model: _Optional[str] = ..., cache_entry_id: _Optional[str] = ...) -> None: ...

class CacheInvalidate(_message.Message):
    __slots__ = ("meta", "tenant_id", "entry_id", "key", "conversation_id", "app_id")
    META_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    tenant_id: str
    entry_id: str
    key: str
    conversation_id: str
    app_id: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., tenant_id: _Optional[str] = ..., entry_id: _Optional[str] = ..., key: _Optional[str] = ..., conversation_id: _Optional[str] = ..., app_id: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("meta", "job", "reason")
    META_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    job: _scheduler_pb2.Job
    reason: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., job: _Optional[_Union[_scheduler_pb2.Job, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ModelProfile(_message.Message):
    __slots__ = ("provider", "model", "ttft_p50", "ttft_p95", "time_per_output_token_p50", "time_per_output_token_p95", "error_rate", "mean_cost_nanousd", "requests", "quality_by_category", "updated_at", "errors", "ttft_p99", "time_per_output_token_p99", "latency_p50", "latency_p95", "feedback_by_category")
    class QualityByCategoryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FeedbackByCategoryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TTFT_P50_FIELD_NUMBER: _ClassVar[int]
    TTFT_P95_FIELD_NUMBER: _ClassVar[int]
    TIME_PER_OUTPUT_TOKEN_P50_FIELD_NUMBER: _ClassVar[int]
    TIME_PER_OUTPUT_TOKEN_P95_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TTFT_P99_FIELD_NUMBER: _ClassVar[int]
    TIME_PER_OUTPUT_TOKEN_P99_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    ttft_p50: _duration_pb2.Duration
    ttft_p95: _duration_pb2.Duration
    time_per_output_token_p50: _duration_pb2.Duration
    time_per_output_token_p95: _duration_pb2.Duration
    error_rate: float
    mean_cost_nanousd: int
    requests: int
    quality_by_category: _containers.ScalarMap[str, float]
    updated_at: _timestamp_pb2.Timestamp
    errors: int
    ttft_p99: _duration_pb2.Duration
    time_per_output_token_p99: _duration_pb2.Duration
    latency_p50: _duration_pb2.Duration
    latency_p95: _duration_pb2.Duration
    feedback_by_category: _containers.ScalarMap[str, int]
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., ttft_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., ttft_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_per_output_token_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_per_output_token_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error_rate: _Optional[float] = ..., mean_cost_nanousd: _Optional[int] = ..., requests: _Optional[int] = ..., quality_by_category: _Optional[_Mapping[str, float]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., errors: _Optional[int] = ..., ttft_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_per_output_token_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., feedback_by_category: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ProfileUpdated(_message.Message):
    __slots__ = ("meta", "profiles")
    META_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    profiles: _containers.RepeatedCompositeFieldContainer[ModelProfile]
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., profiles: _Optional[_Iterable[_Union[ModelProfile, _Mapping]]] = ...) -> None: ...

class WfqClass(_message.Message):
    __slots__ = ("size_boundary_seconds", "weight")
    SIZE_BOUNDARY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    size_boundary_seconds: float
    weight: float
    def __init__(self, size_boundary_seconds: _Optional[float] = ..., weight: _Optional[float] = ...) -> None: ...

class WfqConfig(_message.Message):
    __slots__ = ("classes", "clip_demand_factor", "delta", "max_job_gpus")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    CLIP_DEMAND_FACTOR_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    MAX_JOB_GPUS_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[WfqClass]
    clip_demand_factor: float
    delta: float
    max_job_gpus: int
    def __init__(self, classes: _Optional[_Iterable[_Union[WfqClass, _Mapping]]] = ..., clip_demand_factor: _Optional[float] = ..., delta: _Optional[float] = ..., max_job_gpus: _Optional[int] = ...) -> None: ...

class RouterPolicy(_message.Message):
    __slots__ = ("version", "artifact_uri", "threshold", "candidate_models", "embedding_model", "eval_metrics")
    class EvalMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_URI_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_MODELS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    EVAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    version: str
    artifact_uri: str
    threshold: float
    candidate_models: _containers.RepeatedScalarFieldContainer[str]
    embedding_model: str
    eval_metrics: _containers.ScalarMap[str, float]
    def __init__(self, version: _Optional[str] = ..., artifact_uri: _Optional[str] = ..., threshold: _Optional[float] = ..., candidate_models: _Optional[_Iterable[str]] = ..., embedding_model: _Optional[str] = ..., eval_metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class PolicyUpdated(_message.Message):
    __slots__ = ("meta", "policy_id", "router", "wfq", "scheduler_pool")
    META_FIELD_NUMBER: _ClassVar[int]
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    WFQ_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_POOL_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    policy_id: str
    router: RouterPolicy
    wfq: WfqConfig
    scheduler_pool: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., policy_id: _Optional[str] = ..., router: _Optional[_Union[RouterPolicy, _Mapping]] = ..., wfq: _Optional[_Union[WfqConfig, _Mapping]] = ..., scheduler_pool: _Optional[str] = ...) -> None: ...

class SearchRequested(_message.Message):
    __slots__ = ("meta", "search_id")
    META_FIELD_NUMBER: _ClassVar[int]
    SEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    search_id: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., search_id: _Optional[str] = ...) -> None: ...

class SearchEvaluate(_message.Message):
    __slots__ = ("meta", "search_id", "candidate_id", "config", "workload_key")
    META_FIELD_NUMBER: _ClassVar[int]
    SEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_KEY_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    search_id: str
    candidate_id: str
    config: WfqConfig
    workload_key: str
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., search_id: _Optional[str] = ..., candidate_id: _Optional[str] = ..., config: _Optional[_Union[WfqConfig, _Mapping]] = ..., workload_key: _Optional[str] = ...) -> None: ...

class SearchProgress(_message.Message):
    __slots__ = ("meta", "search_id", "generation", "evaluated", "front_size")
    META_FIELD_NUMBER: _ClassVar[int]
    SEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_FIELD_NUMBER: _ClassVar[int]
    FRONT_SIZE_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    search_id: str
    generation: int
    evaluated: int
    front_size: int
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., search_id: _Optional[str] = ..., generation: _Optional[int] = ..., evaluated: _Optional[int] = ..., front_size: _Optional[int] = ...) -> None: ...

class SearchCompleted(_message.Message):
    __slots__ = ("meta", "search_id", "evaluated", "front_size")
    META_FIELD_NUMBER: _ClassVar[int]
    SEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_FIELD_NUMBER: _ClassVar[int]
    FRONT_SIZE_FIELD_NUMBER: _ClassVar[int]
    meta: EventMeta
    search_id: str
    evaluated: int
    front_size: int
    def __init__(self, meta: _Optional[_Union[EventMeta, _Mapping]] = ..., search_id: _Optional[str] = ..., evaluated: _Optional[int] = ..., front_size: _Optional[int] = ...) -> None: ...
