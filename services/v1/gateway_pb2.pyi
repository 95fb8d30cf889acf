import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmproxy.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UsageLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_LEVEL_UNSPECIFIED: _ClassVar[UsageLevel]
    USAGE_LEVEL_TENANT: _ClassVar[UsageLevel]
    USAGE_LEVEL_APP: _ClassVar[UsageLevel]
    USAGE_LEVEL_USER: _ClassVar[UsageLevel]
    USAGE_LEVEL_CONVERSATION: _ClassVar[UsageLevel]
USAGE_LEVEL_UNSPECIFIED: UsageLevel
USAGE_LEVEL_TENANT: UsageLevel
USAGE_LEVEL_APP: UsageLevel
USAGE_LEVEL_USER: UsageLevel
USAGE_LEVEL_CONVERSATION: UsageLevel

class AskRequest(_message.Message):
    __slots__ = ("prompt", "messages", "system_prompt", "scope", "preferences", "context", "cache", "generation", "request_id", "task_category")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    system_prompt: str
    scope: _common_pb2.Scope
    preferences: _common_pb2.Preferences
    context: _common_pb2.ContextPolicy
    cache: _common_pb2.CachePolicy
    generation: _common_pb2.GenerationParams
    request_id: str
    task_category: str
    def __init__(self, prompt: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., system_prompt: _Optional[str] = ..., scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., preferences: _Optional[_Union[_common_pb2.Preferences, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.ContextPolicy, _Mapping]] = ..., cache: _Optional[_Union[_common_pb2.CachePolicy, _Mapping]] = ..., generation: _Optional[_Union[_common_pb2.GenerationParams, _Mapping]] = ..., request_id: _Optional[str] = ..., task_category: _Optional[str] = ...) -> None: ...

class AskReply(_message.Message):
    __slots__ = ("request_id", "answer", "finish_reason", "choice", "usage", "cost", "cache", "context", "latency", "time_to_first_token", "eta", "conversation_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    answer: str
    finish_reason: str
    choice: _common_pb2.ModelChoice
    usage: _common_pb2.TokenUsage
    cost: _common_pb2.Cost
    cache: _common_pb2.CacheReport
    context: _common_pb2.ContextReport
    latency: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    eta: _common_pb2.Eta
    conversation_id: str
    def __init__(self, request_id: _Optional[str] = ..., answer: _Optional[str] = ..., finish_reason: _Optional[str] = ..., choice: _Optional[_Union[_common_pb2.ModelChoice, _Mapping]] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., cost: _Optional[_Union[_common_pb2.Cost, _Mapping]] = ..., cache: _Optional[_Union[_common_pb2.CacheReport, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.ContextReport, _Mapping]] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., eta: _Optional[_Union[_common_pb2.Eta, _Mapping]] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class AskChunk(_message.Message):
    __slots__ = ("accepted", "delta", "final")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    accepted: AskAccepted
    delta: str
    final: AskReply
    def __init__(self, accepted: _Optional[_Union[AskAccepted, _Mapping]] = ..., delta: _Optional[str] = ..., final: _Optional[_Union[AskReply, _Mapping]] = ...) -> None: ...

class AskAccepted(_message.Message):
    __slots__ = ("request_id", "choice", "eta", "cache")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    choice: _common_pb2.ModelChoice
    eta: _common_pb2.Eta
    cache: _common_pb2.CacheReport
    def __init__(self, request_id: _Optional[str] = ..., choice: _Optional[_Union[_common_pb2.ModelChoice, _Mapping]] = ..., eta: _Optional[_Union[_common_pb2.Eta, _Mapping]] = ..., cache: _Optional[_Union[_common_pb2.CacheReport, _Mapping]] = ...) -> None: ...

class QuoteOption(_message.Message):
    __slots__ = ("choice", "estimated_cost_nanousd", "estimated_latency", "eta", "selected", "within_constraints", "excluded_reason", "estimated_saved_nanousd", "reference_model")
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_LATENCY_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    WITHIN_CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_REASON_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_SAVED_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_MODEL_FIELD_NUMBER: _ClassVar[int]
    choice: _common_pb2.ModelChoice
    estimated_cost_nanousd: int
    estimated_latency: _duration_pb2.Duration
    eta: _common_pb2.Eta
    selected: bool
    within_constraints: bool
    excluded_reason: str
    estimated_saved_nanousd: int
    reference_model: str
    def __init__(self, choice: _Optional[_Union[_common_pb2.ModelChoice, _Mapping]] = ..., estimated_cost_nanousd: _Optional[int] = ..., estimated_latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., eta: _Optional[_Union[_common_pb2.Eta, _Mapping]] = ..., selected: _Optional[bool] = ..., within_constraints: _Optional[bool] = ..., excluded_reason: _Optional[str] = ..., estimated_saved_nanousd: _Optional[int] = ..., reference_model: _Optional[str] = ...) -> None: ...

class QuoteReply(_message.Message):
    __slots__ = ("options", "cache", "context")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    options: _containers.RepeatedCompositeFieldContainer[QuoteOption]
    cache: _common_pb2.CacheReport
    context: _common_pb2.ContextReport
    def __init__(self, options: _Optional[_Iterable[_Union[QuoteOption, _Mapping]]] = ..., cache: _Optional[_Union[_common_pb2.CacheReport, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.ContextReport, _Mapping]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("request_id", "rating", "wrong", "escalate", "comment")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    WRONG_FIELD_NUMBER: _ClassVar[int]
    ESCALATE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    rating: int
    wrong: bool
    escalate: bool
    comment: str
    def __init__(self, request_id: _Optional[str] = ..., rating: _Optional[int] = ..., wrong: _Optional[bool] = ..., escalate: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class FeedbackReply(_message.Message):
    __slots__ = ("accepted", "escalated")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    escalated: AskReply
    def __init__(self, accepted: _Optional[bool] = ..., escalated: _Optional[_Union[AskReply, _Mapping]] = ...) -> None: ...

class UsageRequest(_message.Message):
    __slots__ = ("level", "scope", "since", "until")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    level: UsageLevel
    scope: _common_pb2.Scope
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, level: _Optional[_Union[UsageLevel, str]] = ..., scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UsageByModel(_message.Message):
    __slots__ = ("model", "requests", "cost_nanousd")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    model: str
    requests: int
    cost_nanousd: int
    def __init__(self, model: _Optional[str] = ..., requests: _Optional[int] = ..., cost_nanousd: _Optional[int] = ...) -> None: ...

class UsageReply(_message.Message):
    __slots__ = ("requests", "cache_hits", "input_tokens", "output_tokens", "cost_nanousd", "saved_nanousd", "by_model")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    SAVED_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    BY_MODEL_FIELD_NUMBER: _ClassVar[int]
    requests: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cost_nanousd: int
    saved_nanousd: int
    by_model: _containers.RepeatedCompositeFieldContainer[UsageByModel]
    def __init__(self, requests: _Optional[int] = ..., cache_hits: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_nanousd: _Optional[int] = ..., saved_nanousd: _Optional[int] = ..., by_model: _Optional[_Iterable[_Union[UsageByModel, _Mapping]]] = ...) -> None: ...
