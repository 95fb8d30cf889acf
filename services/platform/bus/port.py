"""The event bus port: what services need from NATS JetStream, as a Protocol.

Two implementations ship: :mod:`.jetstream` (the product) and :mod:`.memory` (an
in-memory fake for fast unit tests of cores and handlers; never used by the product).
``tests/contract/test_bus_contract.py`` runs one suite against both.

Delivery is at-least-once. A handler that returns normally has its message acked; a
handler that raises leaves it unacked and it is delivered again (``attempt`` counts up).
Every event carries a unique ``event_id``; consumers are made idempotent on it by a
:class:`Deduplicator` (the database-backed one records the id in the handler's own
transaction in the product).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, runtime_checkable

__all__ = [
    "Deduplicator",
    "Delivery",
    "Envelope",
    "EventBus",
    "ForgettingDeduplicator",
    "Handler",
    "Subscription",
]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as delivered to a handler."""

    subject: str
    event_id: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    #: 1 on first delivery, 2 on the first redelivery, ...
    attempt: int = 1


Handler = Callable[[Envelope], Awaitable[None]]


class Delivery(enum.Enum):
    """How a subscription's messages are spread over replicas of a service."""

    #: one durable consumer per service; its N replicas share the messages (queue group)
    SHARED = "shared"
    #: every replica gets every message (e.g. ``cache.invalidate``); new messages only
    BROADCAST = "broadcast"


class Subscription(Protocol):
    async def stop(self) -> None:
        """Stop receiving; in-flight handlers finish first."""
        ...


class Deduplicator(Protocol):
    """Remembers which events a consumer has already handled.

    A bus given one asks :meth:`first_time` *before* calling the handler. The id must not
    stay recorded when the handler then fails, or the redelivery would be skipped and the
    event lost: either record it in the handler's own transaction (rolled back with it),
    or implement :class:`ForgettingDeduplicator`, whose ``forget`` the bus calls then.
    """

    async def first_time(self, consumer: str, event_id: str) -> bool:
        """True the first time ``(consumer, event_id)`` is seen, False afterwards."""
        ...


@runtime_checkable
class ForgettingDeduplicator(Deduplicator, Protocol):
    """A deduplicator whose record the bus withdraws when the handler fails."""

    async def forget(self, consumer: str, event_id: str) -> None:
        """Undo :meth:`first_time` for ``(consumer, event_id)``: it is to be handled again."""
        ...


class EventBus(Protocol):
    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        event_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish and wait for the broker's ack (the event is stored when this returns).

        Publishing the same ``event_id`` twice stores it once (within the broker's
        duplicate window, two minutes for JetStream), so a publish may safely be retried.

        Raises:
            InvalidArgumentError: the subject has wildcards or belongs to no stream of
                the catalog, or ``event_id`` is empty.
            UnavailableError: the broker did not store the event in time.
        """
        ...

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        consumer: str,
        delivery: Delivery = Delivery.SHARED,
        ack_wait: timedelta = timedelta(seconds=30),
        max_deliver: int = 10,
        deduplicator: Deduplicator | None = None,
    ) -> Subscription:
        """Deliver events on ``subject`` (wildcards allowed) to ``handler``.

        ``consumer`` names the durable consumer (SHARED) or its prefix (BROADCAST). A
        message whose handler raises is redelivered after a short backoff (after
        ``ack_wait`` when the process died instead), up to ``max_deliver`` deliveries in
        all. With a ``deduplicator``, an event already handled by this consumer is acked
        without calling the handler again (a BROADCAST subscription deduplicates under
        its own per-replica consumer name, since every replica must handle every event).

        Raises:
            InvalidArgumentError: the subject belongs to no stream of the catalog or spans
                several, or BROADCAST was asked of a work-queue stream.
        """
        ...

    async def close(self) -> None:
        """Stop every subscription, flush, disconnect."""
        ...
