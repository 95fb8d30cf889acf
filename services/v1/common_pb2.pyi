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

class Objective(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECTIVE_UNSPECIFIED: _ClassVar[Objective]
    OBJECTIVE_COST: _ClassVar[Objective]
    OBJECTIVE_BALANCED: _ClassVar[Objective]
    OBJECTIVE_QUALITY: _ClassVar[Objective]
    OBJECTIVE_LATENCY: _ClassVar[Objective]

class ContextStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTEXT_STRATEGY_UNSPECIFIED: _ClassVar[ContextStrategy]
    CONTEXT_STRATEGY_FULL: _ClassVar[ContextStrategy]
    CONTEXT_STRATEGY_LAST_K: _ClassVar[ContextStrategy]
    CONTEXT_STRATEGY_TOKEN_BUDGET: _ClassVar[ContextStrategy]
    CONTEXT_STRATEGY_SUMMARY: _ClassVar[ContextStrategy]
    CONTEXT_STRATEGY_RELEVANT: _ClassVar[ContextStrategy]
    CONTEXT_STRATEGY_NONE: _ClassVar[ContextStrategy]

class CacheMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CACHE_MODE_UNSPECIFIED: _ClassVar[CacheMode]
    CACHE_MODE_OFF: _ClassVar[CacheMode]
    CACHE_MODE_EXACT: _ClassVar[CacheMode]
    CACHE_MODE_SEMANTIC: _ClassVar[CacheMode]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]
    ROLE_TOOL: _ClassVar[Role]

class CacheOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CACHE_OUTCOME_UNSPECIFIED: _ClassVar[CacheOutcome]
    CACHE_OUTCOME_MISS: _ClassVar[CacheOutcome]
    CACHE_OUTCOME_EXACT_HIT: _ClassVar[CacheOutcome]
    CACHE_OUTCOME_SEMANTIC_HIT: _ClassVar[CacheOutcome]
    CACHE_OUTCOME_BYPASSED: _ClassVar[CacheOutcome]
OBJECTIVE_UNSPECIFIED: Objective
OBJECTIVE_COST: Objective
OBJECTIVE_BALANCED: Objective
OBJECTIVE_QUALITY: Objective
OBJECTIVE_LATENCY: Objective
CONTEXT_STRATEGY_UNSPECIFIED: ContextStrategy
CONTEXT_STRATEGY_FULL: ContextStrategy
CONTEXT_STRATEGY_LAST_K: ContextStrategy
CONTEXT_STRATEGY_TOKEN_BUDGET: ContextStrategy
CONTEXT_STRATEGY_SUMMARY: ContextStrategy
CONTEXT_STRATEGY_RELEVANT: ContextStrategy
CONTEXT_STRATEGY_NONE: ContextStrategy
CACHE_MODE_UNSPECIFIED: CacheMode
CACHE_MODE_OFF: CacheMode
CACHE_MODE_EXACT: CacheMode
CACHE_MODE_SEMANTIC: CacheMode
ROLE_UNSPECIFIED: Role
ROLE_SYSTEM: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
ROLE_TOOL: Role
CACHE_OUTCOME_UNSPECIFIED: CacheOutcome
CACHE_OUTCOME_MISS: CacheOutcome
CACHE_OUTCOME_EXACT_HIT: CacheOutcome
CACHE_OUTCOME_SEMANTIC_HIT: CacheOutcome
CACHE_OUTCOME_BYPASSED: CacheOutcome

class Scope(_message.Message):
    __slots__ = ("tenant_id", "app_id", "user_id", "conversation_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    app_id: str
    user_id: str
    conversation_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., app_id: _Optional[str] = ..., user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class PreferenceWeights(_message.Message):
    __slots__ = ("cost", "latency", "quality")
    COST_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    cost: float
    latency: float
    quality: float
    def __init__(self, cost: _Optional[float] = ..., latency: _Optional[float] = ..., quality: _Optional[float] = ...) -> None: ...

class Preferences(_message.Message):
    __slots__ = ("objective", "weights", "max_cost_nanousd", "deadline", "pinned_model", "allowed_models", "allow_cascade")
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    PINNED_MODEL_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_MODELS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CASCADE_FIELD_NUMBER: _ClassVar[int]
    objective: Objective
    weights: PreferenceWeights
    max_cost_nanousd: int
    deadline: _duration_pb2.Duration
    pinned_model: str
    allowed_models: _containers.RepeatedScalarFieldContainer[str]
    allow_cascade: bool
    def __init__(self, objective: _Optional[_Union[Objective, str]] = ..., weights: _Optional[_Union[PreferenceWeights, _Mapping]] = ..., max_cost_nanousd: _Optional[int] = ..., deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., pinned_model: _Optional[str] = ..., allowed_models: _Optional[_Iterable[str]] = ..., allow_cascade: _Optional[bool] = ...) -> None: ...

class ContextPolicy(_message.Message):
    __slots__ = ("strategy", "k", "token_budget", "reject_oversized_turn")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    REJECT_OVERSIZED_TURN_FIELD_NUMBER: _ClassVar[int]
    strategy: ContextStrategy
    k: int
    token_budget: int
    reject_oversized_turn: bool
    def __init__(self, strategy: _Optional[_Union[ContextStrategy, str]] = ..., k: _Optional[int] = ..., token_budget: _Optional[int] = ..., reject_oversized_turn: _Optional[bool] = ...) -> None: ...

class CachePolicy(_message.Message):
    __slots__ = ("mode", "similarity_threshold", "no_store")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NO_STORE_FIELD_NUMBER: _ClassVar[int]
    mode: CacheMode
    similarity_threshold: float
    no_store: bool
    def __init__(self, mode: _Optional[_Union[CacheMode, str]] = ..., similarity_threshold: _Optional[float] = ..., no_store: _Optional[bool] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("role", "content", "name")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    role: Role
    content: str
    name: str
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., content: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GenerationParams(_message.Message):
    __slots__ = ("temperature", "top_p", "max_tokens", "stop", "seed", "has_temperature", "has_top_p")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    HAS_TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    HAS_TOP_P_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    max_tokens: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    has_temperature: bool
    has_top_p: bool
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., max_tokens: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., has_temperature: _Optional[bool] = ..., has_top_p: _Optional[bool] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("input_tokens", "cached_input_tokens", "output_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., cached_input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class CacheReport(_message.Message):
    __slots__ = ("outcome", "similarity", "age", "matched_prompt", "entry_id")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_PROMPT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: CacheOutcome
    similarity: float
    age: _duration_pb2.Duration
    matched_prompt: str
    entry_id: str
    def __init__(self, outcome: _Optional[_Union[CacheOutcome, str]] = ..., similarity: _Optional[float] = ..., age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., matched_prompt: _Optional[str] = ..., entry_id: _Optional[str] = ...) -> None: ...

class ContextReport(_message.Message):
    __slots__ = ("strategy", "tokens_sent", "tokens_full_history", "turns_sent", "turns_total", "truncated", "turns_summarized", "turns_dropped_for_window")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SENT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FULL_HISTORY_FIELD_NUMBER: _ClassVar[int]
    TURNS_SENT_FIELD_NUMBER: _ClassVar[int]
    TURNS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TURNS_SUMMARIZED_FIELD_NUMBER: _ClassVar[int]
    TURNS_DROPPED_FOR_WINDOW_FIELD_NUMBER: _ClassVar[int]
    strategy: ContextStrategy
    tokens_sent: int
    tokens_full_history: int
    turns_sent: int
    turns_total: int
    truncated: bool
    turns_summarized: int
    turns_dropped_for_window: int
    def __init__(self, strategy: _Optional[_Union[ContextStrategy, str]] = ..., tokens_sent: _Optional[int] = ..., tokens_full_history: _Optional[int] = ..., turns_sent: _Optional[int] = ..., turns_total: _Optional[int] = ..., truncated: _Optional[bool] = ..., turns_summarized: _Optional[int] = ..., turns_dropped_for_window: _Optional[int] = ...) -> None: ...

class Eta(_message.Message):
    __slots__ = ("accepted_at", "predicted_start", "predicted_completion", "actual_completion", "queued")
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_START_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    accepted_at: _timestamp_pb2.Timestamp
    predicted_start: _timestamp_pb2.Timestamp
    predicted_completion: _timestamp_pb2.Timestamp
    actual_completion: _timestamp_pb2.Timestamp
    queued: bool
    def __init__(self, accepted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predicted_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., predicted_completion: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actual_completion: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queued: _Optional[bool] = ...) -> None: ...

class ModelChoice(_message.Message):
    __slots__ = ("provider", "model", "policy", "predicted_quality", "reason", "escalated")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_QUALITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    policy: str
    predicted_quality: float
    reason: str
    escalated: bool
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., policy: _Optional[str] = ..., predicted_quality: _Optional[float] = ..., reason: _Optional[str] = ..., escalated: _Optional[bool] = ...) -> None: ...

class Cost(_message.Message):
    __slots__ = ("cost_nanousd", "reference_cost_nanousd", "saved_nanousd", "reference_model")
    COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    SAVED_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_MODEL_FIELD_NUMBER: _ClassVar[int]
    cost_nanousd: int
    reference_cost_nanousd: int
    saved_nanousd: int
    reference_model: str
    def __init__(self, cost_nanousd: _Optional[int] = ..., reference_cost_nanousd: _Optional[int] = ..., saved_nanousd: _Optional[int] = ..., reference_model: _Optional[str] = ...) -> None: ...
