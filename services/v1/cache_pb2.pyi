import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmproxy.v1 import common_pb2 as _common_pb2
from llmproxy.v1 import events_pb2 as _events_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CacheScopeKey(_message.Message):
    __slots__ = ("scope", "model_class", "system_prompt", "context_fingerprint", "generation")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MODEL_CLASS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    model_class: str
    system_prompt: str
    context_fingerprint: str
    generation: _common_pb2.GenerationParams
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., model_class: _Optional[str] = ..., system_prompt: _Optional[str] = ..., context_fingerprint: _Optional[str] = ..., generation: _Optional[_Union[_common_pb2.GenerationParams, _Mapping]] = ...) -> None: ...

class CacheLookupRequest(_message.Message):
    __slots__ = ("key", "prompt", "policy")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    key: CacheScopeKey
    prompt: str
    policy: _common_pb2.CachePolicy
    def __init__(self, key: _Optional[_Union[CacheScopeKey, _Mapping]] = ..., prompt: _Optional[str] = ..., policy: _Optional[_Union[_common_pb2.CachePolicy, _Mapping]] = ...) -> None: ...

class CacheLookupReply(_message.Message):
    __slots__ = ("report", "answer", "model", "usage", "original_cost_nanousd", "cache_key")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    report: _common_pb2.CacheReport
    answer: str
    model: str
    usage: _common_pb2.TokenUsage
    original_cost_nanousd: int
    cache_key: str
    def __init__(self, report: _Optional[_Union[_common_pb2.CacheReport, _Mapping]] = ..., answer: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., original_cost_nanousd: _Optional[int] = ..., cache_key: _Optional[str] = ...) -> None: ...

class CacheStoreRequest(_message.Message):
    __slots__ = ("key", "prompt", "answer", "model", "usage", "cost_nanousd", "policy", "request_id", "ttl", "finish_reason")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    key: CacheScopeKey
    prompt: str
    answer: str
    model: str
    usage: _common_pb2.TokenUsage
    cost_nanousd: int
    policy: _common_pb2.CachePolicy
    request_id: str
    ttl: _duration_pb2.Duration
    finish_reason: str
    def __init__(self, key: _Optional[_Union[CacheScopeKey, _Mapping]] = ..., prompt: _Optional[str] = ..., answer: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., cost_nanousd: _Optional[int] = ..., policy: _Optional[_Union[_common_pb2.CachePolicy, _Mapping]] = ..., request_id: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class CacheStoreReply(_message.Message):
    __slots__ = ("stored", "entry_id", "reason")
    STORED_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    entry_id: str
    reason: str
    def __init__(self, stored: _Optional[bool] = ..., entry_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CacheInvalidateRequest(_message.Message):
    __slots__ = ("tenant_id", "entry_id", "key", "conversation_id", "app_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    entry_id: str
    key: str
    conversation_id: str
    app_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., entry_id: _Optional[str] = ..., key: _Optional[str] = ..., conversation_id: _Optional[str] = ..., app_id: _Optional[str] = ...) -> None: ...

class CacheInvalidateReply(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...

class CacheStatsRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class CacheStatsReply(_message.Message):
    __slots__ = ("entries", "exact_hits", "semantic_hits", "misses", "evictions", "memory_bytes")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    EXACT_HITS_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    entries: int
    exact_hits: int
    semantic_hits: int
    misses: int
    evictions: int
    memory_bytes: int
    def __init__(self, entries: _Optional[int] = ..., exact_hits: _Optional[int] = ..., semantic_hits: _Optional[int] = ..., misses: _Optional[int] = ..., evictions: _Optional[int] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class CacheEntryRecord(_message.Message):
    __slots__ = ("entry_id", "tenant_id", "app_id", "conversation_id", "scope", "key", "prompt", "tail", "answer", "model", "usage", "cost_nanousd", "request_id", "created_at", "expires_at", "embedding", "embedding_model")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_NANOUSD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    tenant_id: str
    app_id: str
    conversation_id: str
    scope: str
    key: str
    prompt: str
    tail: str
    answer: str
    model: str
    usage: _common_pb2.TokenUsage
    cost_nanousd: int
    request_id: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    embedding: bytes
    embedding_model: str
    def __init__(self, entry_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., app_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., scope: _Optional[str] = ..., key: _Optional[str] = ..., prompt: _Optional[str] = ..., tail: _Optional[str] = ..., answer: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.TokenUsage, _Mapping]] = ..., cost_nanousd: _Optional[int] = ..., request_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., embedding: _Optional[bytes] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class CacheStored(_message.Message):
    __slots__ = ("meta", "entry")
    META_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    meta: _events_pb2.EventMeta
    entry: CacheEntryRecord
    def __init__(self, meta: _Optional[_Union[_events_pb2.EventMeta, _Mapping]] = ..., entry: _Optional[_Union[CacheEntryRecord, _Mapping]] = ...) -> None: ...
