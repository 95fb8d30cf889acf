"""What every bus implementation does the same way: argument checks, running a handler
under a deduplicator, the redelivery backoff, reserved headers.

Both :mod:`.jetstream` and :mod:`.memory` use these, so the contract suite tests one
behaviour rather than two copies of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from llmproxy.platform.bus.port import (
    Deduplicator,
    Delivery,
    Envelope,
    ForgettingDeduplicator,
    Handler,
)
from llmproxy.platform.bus.subjects import StreamSpec, stream_for
from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "EVENT_ID_HEADER",
    "check_publish",
    "check_subscribe",
    "handle_once",
    "public_headers",
    "redelivery_delay",
]

#: carries ``event_id`` to consumers; ``Nats-Msg-Id`` carries it too, but only for de-dup
EVENT_ID_HEADER = "Llmproxy-Event-Id"

#: headers the bus sets or the broker adds; handlers see neither
_RESERVED_PREFIX = "nats-"


def check_publish(subject: str, event_id: str, streams: Iterable[StreamSpec]) -> StreamSpec:
    """The stream that stores ``subject``; InvalidArgumentError for a bad publish."""
    if not event_id:
        raise InvalidArgumentError("an event needs a non-empty event_id", field="event_id")
    if any(token in ("", "*", ">") for token in subject.split(".")):
        raise InvalidArgumentError(
            f"cannot publish to {subject!r}: wildcards and empty tokens are for subscribing",
            field="subject",
        )
    return stream_for(subject, streams)


def check_subscribe(
    subject: str,
    *,
    consumer: str,
    delivery: Delivery,
    ack_wait: timedelta,
    max_deliver: int,
    streams: Iterable[StreamSpec],
) -> StreamSpec:
    """The stream a subscription reads; InvalidArgumentError for a bad subscription."""
    if not consumer.strip():
        raise InvalidArgumentError("a subscription needs a consumer name", field="consumer")
    if ack_wait <= timedelta(0):
        raise InvalidArgumentError(f"ack_wait must be positive, not {ack_wait}", field="ack_wait")
    if max_deliver < 1:
        raise InvalidArgumentError(
            f"max_deliver must be at least 1, not {max_deliver}", field="max_deliver"
        )
    spec = stream_for(subject, streams)
    if delivery is Delivery.BROADCAST and spec.work_queue:
        # A work queue hands each message to one consumer only, so "every replica gets it"
        # cannot hold there.
        raise InvalidArgumentError(
            f"{subject!r} is in the work-queue stream {spec.name}; it cannot be BROADCAST",
            field="delivery",
        )
    return spec


def public_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers a handler sees: the publisher's own, without the bus's and broker's."""
    if not headers:
        return {}
    return {
        key: value
        for key, value in headers.items()
        if not key.lower().startswith(_RESERVED_PREFIX) and key != EVENT_ID_HEADER
    }


def redelivery_delay(attempt: int, *, first: timedelta, cap: timedelta) -> timedelta:
    """How long a failed delivery waits before the next: doubling from ``first``, capped.

    A handler usually fails because a dependency is down; retrying at once would spend
    all ``max_deliver`` attempts within milliseconds.
    """
    doublings = min(max(attempt - 1, 0), 32)  # beyond any cap; keeps timedelta in range
    return min(first * (1 << doublings), cap)


async def handle_once(
    envelope: Envelope,
    handler: Handler,
    *,
    dedup_consumer: str,
    deduplicator: Deduplicator | None,
) -> bool:
    """Run ``handler`` unless the deduplicator has seen the event; False when skipped.

    Whatever the handler raises propagates (the caller leaves the message unacked); a
    :class:`ForgettingDeduplicator` forgets the id first so the redelivery is handled.
    """
    if deduplicator is not None:
        if not await deduplicator.first_time(dedup_consumer, envelope.event_id):
            return False
    try:
        await handler(envelope)
    except BaseException:
        # Cancellation too: the message stays unacked and comes back, so it must be new then.
        if isinstance(deduplicator, ForgettingDeduplicator):
            await deduplicator.forget(dedup_consumer, envelope.event_id)
        raise
    return True
