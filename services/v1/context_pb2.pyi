import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmproxy.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConversationRef(_message.Message):
    __slots__ = ("scope",)
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ...) -> None: ...

class BuildContextRequest(_message.Message):
    __slots__ = ("scope", "system_prompt", "prompt", "policy", "model", "context_window", "max_output_tokens")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    system_prompt: str
    prompt: str
    policy: _common_pb2.ContextPolicy
    model: str
    context_window: int
    max_output_tokens: int
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., system_prompt: _Optional[str] = ..., prompt: _Optional[str] = ..., policy: _Optional[_Union[_common_pb2.ContextPolicy, _Mapping]] = ..., model: _Optional[str] = ..., context_window: _Optional[int] = ..., max_output_tokens: _Optional[int] = ...) -> None: ...

class BuildContextReply(_message.Message):
    __slots__ = ("messages", "report", "context_fingerprint", "conversation_id")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    report: _common_pb2.ContextReport
    context_fingerprint: str
    conversation_id: str
    def __init__(self, messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., report: _Optional[_Union[_common_pb2.ContextReport, _Mapping]] = ..., context_fingerprint: _Optional[str] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("role", "content", "tokens", "created_at", "request_id", "seq")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    role: _common_pb2.Role
    content: str
    tokens: int
    created_at: _timestamp_pb2.Timestamp
    request_id: str
    seq: int
    def __init__(self, role: _Optional[_Union[_common_pb2.Role, str]] = ..., content: _Optional[str] = ..., tokens: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class AppendTurnsRequest(_message.Message):
    __slots__ = ("scope", "turns", "request_id")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    request_id: str
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class AppendTurnsReply(_message.Message):
    __slots__ = ("turns_total",)
    TURNS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    turns_total: int
    def __init__(self, turns_total: _Optional[int] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("scope", "turns", "summary", "created_at", "reset_at", "summary_upto_seq")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESET_AT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_UPTO_SEQ_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    summary: str
    created_at: _timestamp_pb2.Timestamp
    reset_at: _timestamp_pb2.Timestamp
    summary_upto_seq: int
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., summary: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reset_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., summary_upto_seq: _Optional[int] = ...) -> None: ...

class DeleteConversationReply(_message.Message):
    __slots__ = ("turns_deleted",)
    TURNS_DELETED_FIELD_NUMBER: _ClassVar[int]
    turns_deleted: int
    def __init__(self, turns_deleted: _Optional[int] = ...) -> None: ...
