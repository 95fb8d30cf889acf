import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmproxy.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchObjective(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_OBJECTIVE_UNSPECIFIED: _ClassVar[SearchObjective]
    SEARCH_OBJECTIVE_MEAN_PREDICTION_ERROR: _ClassVar[SearchObjective]
    SEARCH_OBJECTIVE_P99_PREDICTION_ERROR: _ClassVar[SearchObjective]
    SEARCH_OBJECTIVE_MEAN_JCT: _ClassVar[SearchObjective]
    SEARCH_OBJECTIVE_P99_JCT: _ClassVar[SearchObjective]
    SEARCH_OBJECTIVE_MEAN_UNFAIRNESS: _ClassVar[SearchObjective]
    SEARCH_OBJECTIVE_P99_UNFAIRNESS: _ClassVar[SearchObjective]

class SearchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_STATE_UNSPECIFIED: _ClassVar[SearchState]
    SEARCH_STATE_RUNNING: _ClassVar[SearchState]
    SEARCH_STATE_COMPLETED: _ClassVar[SearchState]
    SEARCH_STATE_FAILED: _ClassVar[SearchState]
SEARCH_OBJECTIVE_UNSPECIFIED: SearchObjective
SEARCH_OBJECTIVE_MEAN_PREDICTION_ERROR: SearchObjective
SEARCH_OBJECTIVE_P99_PREDICTION_ERROR: SearchObjective
SEARCH_OBJECTIVE_MEAN_JCT: SearchObjective
SEARCH_OBJECTIVE_P99_JCT: SearchObjective
SEARCH_OBJECTIVE_MEAN_UNFAIRNESS: SearchObjective
SEARCH_OBJECTIVE_P99_UNFAIRNESS: SearchObjective
SEARCH_STATE_UNSPECIFIED: SearchState
SEARCH_STATE_RUNNING: SearchState
SEARCH_STATE_COMPLETED: SearchState
SEARCH_STATE_FAILED: SearchState

class WorkloadSource(_message.Message):
    __slots__ = ("trace_path", "synthetic_spec", "history_pool", "seed", "cluster_gpus", "jobs_limit", "prediction_share")
    TRACE_PATH_FIELD_NUMBER: _ClassVar[int]
    SYNTHETIC_SPEC_FIELD_NUMBER: _ClassVar[int]
    HISTORY_POOL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_GPUS_FIELD_NUMBER: _ClassVar[int]
    JOBS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_SHARE_FIELD_NUMBER: _ClassVar[int]
    trace_path: str
    synthetic_spec: str
    history_pool: str
    seed: int
    cluster_gpus: int
    jobs_limit: int
    prediction_share: float
    def __init__(self, trace_path: _Optional[str] = ..., synthetic_spec: _Optional[str] = ..., history_pool: _Optional[str] = ..., seed: _Optional[int] = ..., cluster_gpus: _Optional[int] = ..., jobs_limit: _Optional[int] = ..., prediction_share: _Optional[float] = ...) -> None: ...

class StartSearchRequest(_message.Message):
    __slots__ = ("workload", "objectives", "population", "generations", "seed", "resume_search_id", "algorithm", "space")
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    POPULATION_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RESUME_SEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    workload: WorkloadSource
    objectives: _containers.RepeatedScalarFieldContainer[SearchObjective]
    population: int
    generations: int
    seed: int
    resume_search_id: str
    algorithm: str
    space: str
    def __init__(self, workload: _Optional[_Union[WorkloadSource, _Mapping]] = ..., objectives: _Optional[_Iterable[_Union[SearchObjective, str]]] = ..., population: _Optional[int] = ..., generations: _Optional[int] = ..., seed: _Optional[int] = ..., resume_search_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., space: _Optional[str] = ...) -> None: ...

class FrontPoint(_message.Message):
    __slots__ = ("candidate_id", "config", "metrics", "preset")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    config: _events_pb2.WfqConfig
    metrics: _containers.ScalarMap[str, float]
    preset: str
    def __init__(self, candidate_id: _Optional[str] = ..., config: _Optional[_Union[_events_pb2.WfqConfig, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., preset: _Optional[str] = ...) -> None: ...

class Search(_message.Message):
    __slots__ = ("search_id", "state", "evaluated", "generation", "front", "created_at", "error", "generations", "population", "objectives", "workload")
    SEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FRONT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    POPULATION_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    search_id: str
    state: SearchState
    evaluated: int
    generation: int
    front: _containers.RepeatedCompositeFieldContainer[FrontPoint]
    created_at: _timestamp_pb2.Timestamp
    error: str
    generations: int
    population: int
    objectives: _containers.RepeatedScalarFieldContainer[SearchObjective]
    workload: str
    def __init__(self, search_id: _Optional[str] = ..., state: _Optional[_Union[SearchState, str]] = ..., evaluated: _Optional[int] = ..., generation: _Optional[int] = ..., front: _Optional[_Iterable[_Union[FrontPoint, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ..., generations: _Optional[int] = ..., population: _Optional[int] = ..., objectives: _Optional[_Iterable[_Union[SearchObjective, str]]] = ..., workload: _Optional[str] = ...) -> None: ...

class SearchRef(_message.Message):
    __slots__ = ("search_id",)
    SEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    search_id: str
    def __init__(self, search_id: _Optional[str] = ...) -> None: ...

class ListSearchesRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListSearchesReply(_message.Message):
    __slots__ = ("searches",)
    SEARCHES_FIELD_NUMBER: _ClassVar[int]
    searches: _containers.RepeatedCompositeFieldContainer[Search]
    def __init__(self, searches: _Optional[_Iterable[_Union[Search, _Mapping]]] = ...) -> None: ...

class ApplyConfigRequest(_message.Message):
    __slots__ = ("search_id", "candidate_id", "preset", "pool")
    SEARCH_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    search_id: str
    candidate_id: str
    preset: str
    pool: str
    def __init__(self, search_id: _Optional[str] = ..., candidate_id: _Optional[str] = ..., preset: _Optional[str] = ..., pool: _Optional[str] = ...) -> None: ...

class ApplyConfigReply(_message.Message):
    __slots__ = ("policy_id", "config")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    config: _events_pb2.WfqConfig
    def __init__(self, policy_id: _Optional[str] = ..., config: _Optional[_Union[_events_pb2.WfqConfig, _Mapping]] = ...) -> None: ...

class TrainRouterRequest(_message.Message):
    __slots__ = ("train_domains", "candidate_models", "seed")
    TRAIN_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_MODELS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    train_domains: _containers.RepeatedScalarFieldContainer[str]
    candidate_models: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    def __init__(self, train_domains: _Optional[_Iterable[str]] = ..., candidate_models: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ...) -> None: ...

class RouterModel(_message.Message):
    __slots__ = ("version", "active", "eval_metrics", "created_at")
    class EvalMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    EVAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    version: str
    active: bool
    eval_metrics: _containers.ScalarMap[str, float]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[str] = ..., active: _Optional[bool] = ..., eval_metrics: _Optional[_Mapping[str, float]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RouterRef(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class ListRoutersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRoutersReply(_message.Message):
    __slots__ = ("routers",)
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    routers: _containers.RepeatedCompositeFieldContainer[RouterModel]
    def __init__(self, routers: _Optional[_Iterable[_Union[RouterModel, _Mapping]]] = ...) -> None: ...
