"""Publishing and reading protobuf events on the bus."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from google.protobuf.message import DecodeError, Message

from llmproxy.platform.bus.port import Envelope, EventBus
from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.v1 import events_pb2

__all__ = ["decode_event", "new_event_meta", "publish_event"]


class _HasMeta(Protocol):
    @property
    def meta(self) -> events_pb2.EventMeta: ...

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


M = TypeVar("M", bound=Message)


def new_event_meta(source: str, *, now: datetime | None = None) -> events_pb2.EventMeta:
    """A fresh header: a unique id, the time, and who published it."""
    meta = events_pb2.EventMeta(event_id=str(uuid.uuid4()), source=source)
    meta.occurred_at.FromDatetime(now or datetime.now(UTC))
    return meta


async def publish_event(bus: EventBus, subject: str, event: _HasMeta) -> None:
    """Publish ``event`` (which must carry ``meta.event_id``) and wait for the ack."""
    if not event.meta.event_id:
        raise InvalidArgumentError("event has no meta.event_id", field="meta.event_id")
    await bus.publish(subject, event.SerializeToString(), event_id=event.meta.event_id)


def decode_event(envelope: Envelope, message_type: type[M]) -> M:
    """Parse an envelope's payload; a malformed payload is an InvalidArgumentError."""
    message = message_type()
    try:
        message.ParseFromString(envelope.data)
    except DecodeError as exc:
        raise InvalidArgumentError(
            f"event {envelope.event_id} on {envelope.subject} is not a valid "
            f"{message_type.DESCRIPTOR.full_name}: {exc}"
        ) from exc
    return message
