import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmproxy.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WhatsAppUserRef(_message.Message):
    __slots__ = ("wa_id",)
    WA_ID_FIELD_NUMBER: _ClassVar[int]
    wa_id: str
    def __init__(self, wa_id: _Optional[str] = ...) -> None: ...

class WhatsAppUser(_message.Message):
    __slots__ = ("wa_id", "tenant_id", "user_id", "conversation_id", "mode", "pinned_model", "context_strategy", "cache_enabled", "last_inbound_at")
    WA_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PINNED_MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CACHE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    LAST_INBOUND_AT_FIELD_NUMBER: _ClassVar[int]
    wa_id: str
    tenant_id: str
    user_id: str
    conversation_id: str
    mode: str
    pinned_model: str
    context_strategy: str
    cache_enabled: bool
    last_inbound_at: _timestamp_pb2.Timestamp
    def __init__(self, wa_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., user_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., mode: _Optional[str] = ..., pinned_model: _Optional[str] = ..., context_strategy: _Optional[str] = ..., cache_enabled: _Optional[bool] = ..., last_inbound_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("wa_id", "text", "template_name")
    WA_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_NAME_FIELD_NUMBER: _ClassVar[int]
    wa_id: str
    text: str
    template_name: str
    def __init__(self, wa_id: _Optional[str] = ..., text: _Optional[str] = ..., template_name: _Optional[str] = ...) -> None: ...

class SendMessageReply(_message.Message):
    __slots__ = ("message_ids", "sent_as_template")
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    SENT_AS_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    message_ids: _containers.RepeatedScalarFieldContainer[str]
    sent_as_template: bool
    def __init__(self, message_ids: _Optional[_Iterable[str]] = ..., sent_as_template: _Optional[bool] = ...) -> None: ...

class WhatsAppInbound(_message.Message):
    __slots__ = ("meta", "message_id", "wa_id", "kind", "text", "sent_at")
    META_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WA_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    meta: _events_pb2.EventMeta
    message_id: str
    wa_id: str
    kind: str
    text: str
    sent_at: _timestamp_pb2.Timestamp
    def __init__(self, meta: _Optional[_Union[_events_pb2.EventMeta, _Mapping]] = ..., message_id: _Optional[str] = ..., wa_id: _Optional[str] = ..., kind: _Optional[str] = ..., text: _Optional[str] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WhatsAppStatusEvent(_message.Message):
    __slots__ = ("meta", "message_id", "status", "at", "error")
    META_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    meta: _events_pb2.EventMeta
    message_id: str
    status: str
    at: _timestamp_pb2.Timestamp
    error: str
    def __init__(self, meta: _Optional[_Union[_events_pb2.EventMeta, _Mapping]] = ..., message_id: _Optional[str] = ..., status: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...
