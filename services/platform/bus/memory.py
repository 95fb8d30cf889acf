"""An in-memory :class:`~.port.EventBus` for tests only; the product never uses it.

It keeps the semantics that handlers depend on, so a handler tested here behaves the
same on JetStream (``tests/contract/test_bus_contract.py`` runs one suite on both):

* a handler that returns has its message acked; one that raises gets it again with
  ``attempt + 1`` (after ``redelivery_backoff``), up to ``max_deliver`` deliveries;
* a SHARED consumer is durable: it starts with the messages already stored, survives
  its subscribers, and splits its messages among them;
* every BROADCAST subscription gets every message published after it subscribed;
* a second publish of an ``event_id`` is dropped; a deduplicator is honoured;
* redeliveries come before new messages, and each consumer sees stream order.

Not modelled: ``ack_wait`` (a handler here always ends by returning or raising), the
de-dup window (ids are remembered for the bus's lifetime), storage limits, restarts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from llmproxy.platform.bus.handling import (
    check_publish,
    check_subscribe,
    handle_once,
    public_headers,
    redelivery_delay,
)
from llmproxy.platform.bus.port import Deduplicator, Delivery, Envelope, Handler, Subscription
from llmproxy.platform.bus.subjects import (
    STREAMS,
    StreamSpec,
    stream_for,
    subject_matches,
    subjects_overlap,
)
from llmproxy.platform.errors import InvalidArgumentError, UnavailableError

__all__ = ["InMemoryBus", "InMemoryDeduplicator"]

_log = structlog.get_logger(__name__)

#: queue priorities: redeliveries first, as JetStream does
_REDELIVERY, _FRESH = 0, 1

#: makes queue entries unique, so the priority queue never compares two _Stored
_entry_numbers = itertools.count()


@dataclass(slots=True)
class _Stored:
    sequence: int
    subject: str
    event_id: str
    data: bytes
    headers: dict[str, str]
    #: work-queue streams drop a message once a consumer acked it
    removed: bool = False


@dataclass(slots=True)
class _Consumer:
    name: str
    stream: StreamSpec
    subject: str
    max_deliver: int
    broadcast: bool
    #: (priority, stream sequence, entry number, attempt, message)
    queue: asyncio.PriorityQueue[tuple[int, int, int, int, _Stored]] = field(
        default_factory=asyncio.PriorityQueue
    )
    #: delivered and neither acked nor given up; includes those waiting to be redelivered
    unacked: int = 0
    timers: set[asyncio.TimerHandle] = field(default_factory=set)

    def offer(self, stored: _Stored, *, attempt: int, priority: int = _FRESH) -> None:
        self.queue.put_nowait((priority, stored.sequence, next(_entry_numbers), attempt, stored))

    def backlog(self) -> int:
        return self.queue.qsize() + self.unacked


class InMemoryBus:
    """A test double of :class:`~.jetstream.JetStreamBus`; see the module docstring."""

    def __init__(
        self,
        *,
        streams: Iterable[StreamSpec] = STREAMS,
        redelivery_backoff: timedelta = timedelta(0),
        instance_id: str = "memory",
    ) -> None:
        self._streams = tuple(streams)
        self._redelivery_backoff = redelivery_backoff
        self._instance_id = instance_id
        self._stored: dict[str, list[_Stored]] = {spec.name: [] for spec in self._streams}
        self._ids: dict[str, set[str]] = {spec.name: set() for spec in self._streams}
        self._consumers: dict[tuple[str, str], _Consumer] = {}
        self._subscriptions: set[_MemorySubscription] = set()
        self._sequence = itertools.count(1)
        self._broadcasts = itertools.count(1)
        self._closed = False

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        event_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """See :meth:`EventBus.publish`."""
        spec = check_publish(subject, event_id, self._streams)
        if self._closed:
            raise UnavailableError(f"cannot publish {subject}: the bus is closed")
        if event_id in self._ids[spec.name]:
            return
        self._ids[spec.name].add(event_id)
        stored = _Stored(next(self._sequence), subject, event_id, bytes(data), dict(headers or {}))
        self._stored[spec.name].append(stored)
        for consumer in self._consumers.values():
            if consumer.stream is spec and subject_matches(consumer.subject, subject):
                consumer.offer(stored, attempt=1)

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
        """See :meth:`EventBus.subscribe`."""
        spec = check_subscribe(
            subject,
            consumer=consumer,
            delivery=delivery,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            streams=self._streams,
        )
        if self._closed:
            raise UnavailableError(f"cannot subscribe to {subject}: the bus is closed")
        if delivery is Delivery.BROADCAST:
            name = f"{consumer}-{self._instance_id}-{next(self._broadcasts)}"
            state = self._add_consumer(name, spec, subject, max_deliver, broadcast=True)
            dedup_consumer = name
        else:
            state = self._consumers.get((spec.name, consumer)) or self._add_consumer(
                consumer, spec, subject, max_deliver, broadcast=False
            )
            # like a JetStream create-or-update: the latest subscriber's settings apply
            state.subject, state.max_deliver = subject, max_deliver
            dedup_consumer = consumer
        subscription = _MemorySubscription(self, state, handler, deduplicator, dedup_consumer)
        self._subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        """Stop every subscription (in-flight handlers finish); later publishes fail."""
        self._closed = True
        await asyncio.gather(*(sub.stop() for sub in list(self._subscriptions)))
        for state in self._consumers.values():
            for timer in state.timers:
                timer.cancel()

    def backlog(self, consumer: str, subject: str) -> int:
        """Messages of the SHARED ``consumer`` on ``subject``'s stream not yet acked
        (queued, in a handler, or waiting to be redelivered); 0 for an unknown consumer."""
        state = self._consumers.get((stream_for(subject, self._streams).name, consumer))
        return 0 if state is None else state.backlog()

    def _add_consumer(
        self, name: str, spec: StreamSpec, subject: str, max_deliver: int, *, broadcast: bool
    ) -> _Consumer:
        if spec.work_queue and any(
            other.stream is spec and subjects_overlap(other.subject, subject)
            for other in self._consumers.values()
        ):
            # JetStream refuses this too: a work queue needs one consumer per subject.
            raise InvalidArgumentError(
                f"the work-queue stream {spec.name} already has a consumer for {subject!r}",
                field="consumer",
            )
        state = _Consumer(name, spec, subject, max_deliver, broadcast)
        if not broadcast:  # a new durable consumer starts at the beginning of the stream
            for stored in self._stored[spec.name]:
                if not stored.removed and subject_matches(subject, stored.subject):
                    state.offer(stored, attempt=1)
        self._consumers[(spec.name, name)] = state
        return state

    def _redeliver(self, state: _Consumer, stored: _Stored, attempt: int) -> None:
        # the pause after delivery number attempt - 1 failed
        delay = redelivery_delay(
            attempt - 1, first=self._redelivery_backoff, cap=timedelta(seconds=30)
        )

        def due() -> None:
            state.timers.discard(timer)
            state.unacked -= 1
            state.offer(stored, attempt=attempt, priority=_REDELIVERY)

        timer = asyncio.get_running_loop().call_later(delay.total_seconds(), due)
        state.timers.add(timer)

    def _forget_subscription(self, subscription: _MemorySubscription) -> None:
        self._subscriptions.discard(subscription)
        state = subscription.state
        if state.broadcast:
            for timer in state.timers:
                timer.cancel()
            self._consumers.pop((state.stream.name, state.name), None)


class _MemorySubscription:
    def __init__(
        self,
        bus: InMemoryBus,
        state: _Consumer,
        handler: Handler,
        deduplicator: Deduplicator | None,
        dedup_consumer: str,
    ) -> None:
        self._bus = bus
        self.state = state
        self._handler = handler
        self._deduplicator = deduplicator
        self._dedup_consumer = dedup_consumer
        self._stopping = False
        self._waiting: asyncio.Future[tuple[int, int, int, int, _Stored]] | None = None
        self._task = asyncio.create_task(self._run(), name=f"memory-bus:{state.name}")

    async def stop(self) -> None:
        """Stop receiving; a handler in flight finishes first. Idempotent."""
        self._stopping = True
        if self._waiting is not None:
            self._waiting.cancel()
        if self._task is not asyncio.current_task():
            await asyncio.wait([self._task])
        self._bus._forget_subscription(self)

    async def _run(self) -> None:
        state = self.state
        while not self._stopping:
            waiting = asyncio.ensure_future(state.queue.get())
            self._waiting = waiting
            try:
                await asyncio.wait([waiting])
            finally:
                self._waiting = None
                waiting.cancel()
            if waiting.cancelled():
                continue
            *_, attempt, stored = waiting.result()
            state.unacked += 1
            if self._stopping:  # taken while stopping: hand it back, as a nak would
                self._bus._redeliver(state, stored, attempt + 1)
                return
            await self._process(stored, attempt)
            # Yield, so that the subscribers sharing a consumer take turns even when
            # handlers never await (over NATS the network interleaves them anyway).
            await asyncio.sleep(0)

    async def _process(self, stored: _Stored, attempt: int) -> None:
        state = self.state
        envelope = Envelope(
            subject=stored.subject,
            event_id=stored.event_id,
            data=stored.data,
            headers=public_headers(stored.headers),
            attempt=attempt,
        )
        try:
            await handle_once(
                envelope,
                self._handler,
                dedup_consumer=self._dedup_consumer,
                deduplicator=self._deduplicator,
            )
        except Exception as exc:
            if attempt >= state.max_deliver:
                _log.error(
                    "bus.event_dropped",
                    consumer=state.name, event_id=stored.event_id, attempt=attempt, error=repr(exc),
                )  # fmt: skip
                state.unacked -= 1
            else:
                _log.warning(
                    "bus.handler_failed",
                    consumer=state.name, event_id=stored.event_id, attempt=attempt, error=repr(exc),
                )  # fmt: skip
                self._bus._redeliver(state, stored, attempt + 1)
            return
        state.unacked -= 1
        if state.stream.work_queue:
            stored.removed = True


class InMemoryDeduplicator:
    """A :class:`~.port.ForgettingDeduplicator` in a dict, for tests."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    async def first_time(self, consumer: str, event_id: str) -> bool:
        """True the first time ``(consumer, event_id)`` is seen, False afterwards."""
        seen = self._seen.setdefault(consumer, set())
        if event_id in seen:
            return False
        seen.add(event_id)
        return True

    async def forget(self, consumer: str, event_id: str) -> None:
        """Undo :meth:`first_time`: the handler failed and the event comes back."""
        self._seen.get(consumer, set()).discard(event_id)

    def seen(self, consumer: str, event_id: str) -> bool:
        """Whether ``(consumer, event_id)`` is recorded (for assertions)."""
        return event_id in self._seen.get(consumer, set())
