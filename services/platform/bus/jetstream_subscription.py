"""One subscription of :class:`~.jetstream.JetStreamBus`: its pull consumer and fetch loop.

The loop fetches, runs the handler, then acks (success) or naks with a backoff (failure).
It never gives up on the broker: a timeout, a lost connection or a vanished consumer
costs a pause and a retry, so a restart of nats-server only delays delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header

from llmproxy.platform.bus.handling import (
    EVENT_ID_HEADER,
    handle_once,
    public_headers,
    redelivery_delay,
)
from llmproxy.platform.bus.port import Deduplicator, Delivery, Envelope, Handler

if TYPE_CHECKING:
    from llmproxy.platform.bus.jetstream import JetStreamOptions

__all__ = ["ConsumerPlan", "JetStreamSubscription", "consumer_name"]

_log = structlog.get_logger(__name__)

#: a failing fetch (no stream, no JetStream) is retried at most this far apart
_MAX_FETCH_PAUSE = timedelta(seconds=5)


def consumer_name(consumer: str) -> str:
    """The NATS consumer name for ``consumer``: each character NATS forbids in a name
    (``.``, ``*``, ``>``, blanks, slashes, non-ASCII) becomes ``_``."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in consumer)


@dataclass(frozen=True, slots=True)
class ConsumerPlan:
    """Everything that defines one subscription's JetStream consumer."""

    stream: str
    subject: str
    delivery: Delivery
    ack_wait: timedelta
    max_deliver: int
    #: the NATS consumer (a durable name; per subscription for BROADCAST)
    name: str
    #: the name the deduplicator records under
    dedup_consumer: str

    @classmethod
    def make(
        cls,
        *,
        stream: str,
        subject: str,
        consumer: str,
        delivery: Delivery,
        ack_wait: timedelta,
        max_deliver: int,
        instance_id: str,
    ) -> ConsumerPlan:
        name = consumer_name(consumer)
        if delivery is Delivery.BROADCAST:
            # Every subscription needs a consumer of its own to see every message; the
            # random tail keeps two subscriptions of one process apart.
            name = consumer_name(f"{consumer}-{instance_id}-{secrets.token_hex(3)}")
        dedup = consumer if delivery is Delivery.SHARED else name
        return cls(stream, subject, delivery, ack_wait, max_deliver, name, dedup)


class JetStreamSubscription:
    """A running pull subscription; made by :meth:`JetStreamBus.subscribe`."""

    def __init__(
        self,
        js: JetStreamContext,
        plan: ConsumerPlan,
        handler: Handler,
        *,
        deduplicator: Deduplicator | None,
        options: JetStreamOptions,
        on_stopped: Callable[[JetStreamSubscription], None],
    ) -> None:
        self._js = js
        self._plan = plan
        self._handler = handler
        self._deduplicator = deduplicator
        self._options = options
        self._on_stopped = on_stopped
        self._log = _log.bind(subject=plan.subject, consumer=plan.name, stream=plan.stream)
        self._psub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._fetching: asyncio.Future[list[Msg]] | None = None
        self._stopping = False
        self._stop_requested = asyncio.Event()
        #: BROADCAST: the stream sequence to resume from if the consumer must be remade
        self._resume_at: int | None = None

    @property
    def consumer(self) -> str:
        """The NATS consumer this subscription reads (for operators and tests)."""
        return self._plan.name

    async def open(self) -> None:
        """Create (or update) the consumer, bind to it and start the fetch loop."""
        await self._create_consumer()
        self._psub = await self._js.pull_subscribe_bind(
            consumer=self._plan.name, stream=self._plan.stream
        )
        self._task = asyncio.create_task(self._run(), name=f"bus:{self._plan.name}")

    def wake(self) -> None:
        """Abandon the pending fetch and issue a new one (after a reconnect: the server
        forgot the old pull request, and waiting out its timeout would delay delivery)."""
        if self._fetching is not None:
            self._fetching.cancel()

    async def stop(self) -> None:
        """Stop fetching; a handler in flight finishes (and acks) first. Idempotent."""
        if self._stopping:
            if self._task is not None and self._task is not asyncio.current_task():
                await asyncio.wait([self._task])
            return
        self._stopping = True
        self._stop_requested.set()
        self.wake()
        # A handler that stops its own subscription must not wait for itself.
        if self._task is not None and self._task is not asyncio.current_task():
            await asyncio.wait([self._task])
        if self._psub is not None:
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()
        if self._plan.delivery is Delivery.BROADCAST:
            # Nobody else reads a BROADCAST consumer; inactive_threshold would remove it
            # later, deleting it now spares the server the backlog meanwhile.
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self._plan.stream, self._plan.name)
        self._on_stopped(self)
        self._log.debug("bus.subscription_stopped")

    def _consumer_config(self) -> ConsumerConfig:
        plan = self._plan
        config = ConsumerConfig(
            name=plan.name,
            durable_name=plan.name,
            description=f"llmproxy {plan.delivery.value} consumer of {plan.subject}",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=plan.ack_wait.total_seconds(),
            max_deliver=plan.max_deliver,
            filter_subject=plan.subject,
            deliver_policy=DeliverPolicy.ALL,
        )
        if plan.delivery is Delivery.BROADCAST:
            config.inactive_threshold = self._options.broadcast_inactive_threshold.total_seconds()
            if self._resume_at is None:
                config.deliver_policy = DeliverPolicy.NEW
            else:
                config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
                config.opt_start_seq = self._resume_at
        return config

    async def _create_consumer(self) -> None:
        info = await self._js.add_consumer(self._plan.stream, config=self._consumer_config())
        if self._plan.delivery is Delivery.BROADCAST and self._resume_at is None:
            delivered = info.delivered.stream_seq if info.delivered is not None else 0
            self._resume_at = delivered + 1

    async def _ensure_consumer(self) -> None:
        try:
            await self._js.consumer_info(self._plan.stream, self._plan.name)
        except nats.js.errors.NotFoundError:
            # Deleted by an operator, by inactive_threshold during a long outage, or lost
            # with the server's storage; make it again so delivery resumes.
            self._log.warning("bus.consumer_recreated")
            await self._create_consumer()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                messages = await self._fetch()
            except TimeoutError:
                failures = 0  # nothing to deliver, or the server is restarting: ask again
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                self._log.info("bus.subscription_connection_closed")
                return
            except Exception as exc:
                failures += 1
                pause = redelivery_delay(
                    failures, first=self._options.redelivery_backoff, cap=_MAX_FETCH_PAUSE
                )
                self._log.warning("bus.fetch_failed", error=repr(exc), retry_in=str(pause))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), pause.total_seconds())
                with contextlib.suppress(Exception):
                    await self._ensure_consumer()
                continue
            if self._options.handle_fetch_concurrently and len(messages) > 1:
                if self._stopping:
                    await self._release(messages)
                else:
                    await asyncio.gather(*(self._process(m) for m in messages))
                continue
            for index, message in enumerate(messages):
                if self._stopping:
                    await self._release(messages[index:])
                    break
                await self._process(message)

    async def _fetch(self) -> list[Msg]:
        """One fetch that :meth:`wake` can abandon (then an empty list)."""
        assert self._psub is not None
        fetching = asyncio.ensure_future(
            self._psub.fetch(
                self._options.fetch_batch, timeout=self._options.fetch_timeout.total_seconds()
            )
        )
        self._fetching = fetching
        try:
            await asyncio.wait([fetching])
        finally:
            self._fetching = None
            fetching.cancel()
        return [] if fetching.cancelled() else fetching.result()

    async def _release(self, messages: list[Msg]) -> None:
        # Fetched but stopping: hand them back at once rather than after ack_wait.
        for message in messages:
            with contextlib.suppress(Exception):
                await message.nak()

    def _envelope(self, message: Msg) -> Envelope:
        metadata = message.metadata
        headers = message.headers or {}
        event_id = (
            headers.get(EVENT_ID_HEADER)
            or headers.get(Header.MSG_ID.value)
            # published by a foreign client without an id: the stream position is unique
            or f"{metadata.stream}:{metadata.sequence.stream}"
        )
        return Envelope(
            subject=message.subject,
            event_id=event_id,
            data=message.data,
            headers=public_headers(headers),
            attempt=metadata.num_delivered,
        )

    async def _process(self, message: Msg) -> None:
        envelope = self._envelope(message)
        try:
            async with self._in_progress(message):
                handled = await handle_once(
                    envelope,
                    self._handler,
                    dedup_consumer=self._plan.dedup_consumer,
                    deduplicator=self._deduplicator,
                )
        except Exception as exc:
            await self._failed(message, envelope, exc)
            return
        if not handled:
            self._log.info("bus.duplicate_skipped", event_id=envelope.event_id)
        if self._plan.delivery is Delivery.BROADCAST:
            self._resume_at = message.metadata.sequence.stream + 1
        try:
            await message.ack()
        except Exception as exc:
            # The handler's work is done; the event comes back after ack_wait and the
            # consumer's idempotency absorbs it.
            self._log.warning("bus.ack_failed", event_id=envelope.event_id, error=repr(exc))

    async def _failed(self, message: Msg, envelope: Envelope, exc: Exception) -> None:
        log = self._log.bind(event_id=envelope.event_id, attempt=envelope.attempt)
        try:
            if envelope.attempt >= self._plan.max_deliver:
                log.error("bus.event_dropped", error=repr(exc), exc_info=exc)
                await message.term()
                return
            delay = redelivery_delay(
                envelope.attempt,
                first=self._options.redelivery_backoff,
                cap=self._options.max_redelivery_backoff,
            )
            log.warning("bus.handler_failed", error=repr(exc), retry_in=str(delay), exc_info=exc)
            await message.nak(delay=delay.total_seconds())
        except Exception as nak_exc:
            log.warning("bus.nak_failed", error=repr(nak_exc))  # redelivered after ack_wait

    @contextlib.asynccontextmanager
    async def _in_progress(self, message: Msg) -> AsyncIterator[None]:
        """Tell the server the handler still works, so a slow handler is not redelivered
        to another replica while it runs."""

        async def keep_alive() -> None:
            every = self._plan.ack_wait.total_seconds() / 2
            while True:
                await asyncio.sleep(every)
                with contextlib.suppress(Exception):
                    await message.in_progress()

        task = asyncio.create_task(keep_alive())
        try:
            yield
        finally:
            # not awaited: awaiting it here could swallow a cancellation meant for us
            task.cancel()
