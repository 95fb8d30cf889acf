"""The product's :class:`~.port.EventBus`: NATS JetStream through nats-py.

* Streams come from :data:`.subjects.STREAMS`, declared idempotently at connect (file
  storage, a de-dup window; work-queue retention where the catalog says so).
* ``publish`` waits for the PubAck and sets ``Nats-Msg-Id`` = ``event_id``, so a retried
  publish is stored once; it retries by itself while the connection is being restored.
* ``subscribe`` runs a fetch loop on a durable pull consumer (see
  :mod:`.jetstream_subscription`): SHARED replicas bind the same consumer and split its
  messages; each BROADCAST subscription gets a consumer of its own.
* nats-py reconnects forever after the first connection; the first connection itself is
  bounded (``retries``) so a service that cannot reach NATS fails at start, visibly.

Foreign (nats) errors become :class:`UnavailableError` / :class:`InvalidArgumentError` here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import Header, RetentionPolicy, StorageType, StreamConfig

from llmproxy.platform.bus.handling import EVENT_ID_HEADER, check_publish, check_subscribe
from llmproxy.platform.bus.jetstream_subscription import (
    ConsumerPlan,
    JetStreamSubscription,
    consumer_name,
)
from llmproxy.platform.bus.port import Deduplicator, Delivery, Handler, Subscription
from llmproxy.platform.bus.subjects import STREAMS, StreamSpec
from llmproxy.platform.errors import (
    ConfigurationError,
    InvalidArgumentError,
    UnavailableError,
)

__all__ = ["JetStreamBus", "JetStreamOptions", "consumer_name"]

_log = structlog.get_logger(__name__)

#: a single backoff sleep at start never exceeds this, however many retries are asked for
_MAX_BACKOFF_SECONDS = 30.0

#: the stream settings the catalog owns; the rest (replicas, limits) are the operators'
_MANAGED_STREAM_FIELDS = ("subjects", "retention", "storage", "duplicate_window", "max_age")


@dataclass(frozen=True, slots=True)
class JetStreamOptions:
    """Tuning of :class:`JetStreamBus`; the defaults suit the product."""

    #: messages asked for per fetch; 1 spreads work evenly over SHARED replicas, and a
    #: message never waits unacked behind another message's handler
    fetch_batch: int = 1
    #: run the handlers of one fetch's messages at once rather than one after another
    #: (SHARED consumers; with ``fetch_batch`` > 1 a group-committing handler then writes
    #: a whole fetch in one transaction)
    handle_fetch_concurrently: bool = False
    #: how long one fetch waits for a message before it asks again
    fetch_timeout: timedelta = timedelta(seconds=5)
    #: pause before the first redelivery of a failed message; doubles per attempt
    redelivery_backoff: timedelta = timedelta(milliseconds=250)
    #: the longest pause between two deliveries of a failing message
    max_redelivery_backoff: timedelta = timedelta(seconds=30)
    #: how long ``publish`` keeps trying (through a reconnect) before UnavailableError
    publish_timeout: timedelta = timedelta(seconds=10)
    #: one publish attempt waits this long for its PubAck
    publish_attempt_timeout: timedelta = timedelta(seconds=2)
    #: the server removes a BROADCAST consumer whose replica is gone this long
    broadcast_inactive_threshold: timedelta = timedelta(minutes=5)
    #: a second publish of an event id within this window is dropped by the server
    duplicate_window: timedelta = timedelta(minutes=2)
    #: pause between two reconnect attempts of nats-py after the connection is lost
    reconnect_time_wait: timedelta = timedelta(seconds=1)


def redacted_url(url: str) -> str:
    """``url`` without a password or token (safe to log and to put in error messages)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _reason(exc: BaseException | None) -> str:
    if exc is None or (isinstance(exc, TimeoutError) and not str(exc)):
        return "no answer in time"
    if isinstance(exc, nats.errors.NoRespondersError):
        return "JetStream does not answer (is nats-server started with -js?)"
    return str(exc).strip() or type(exc).__name__


@dataclass(slots=True)
class _Connection:
    """The client plus what its callbacks need; made before the client connects."""

    url: str
    subscriptions: set[JetStreamSubscription] = field(default_factory=set)
    last_error: BaseException | None = None
    connected_once: bool = False
    closing: bool = False

    async def on_error(self, exc: Exception) -> None:
        self.last_error = exc
        if self.connected_once:
            _log.warning("bus.nats_error", url=self.url, error=repr(exc))

    async def on_disconnected(self) -> None:
        if self.connected_once and not self.closing:
            _log.warning("bus.nats_disconnected", url=self.url)

    async def on_reconnected(self) -> None:
        _log.info("bus.nats_reconnected", url=self.url)
        # The server forgot every pending pull request; ask again now instead of
        # waiting for each fetch to time out.
        for subscription in list(self.subscriptions):
            subscription.wake()


class JetStreamBus:
    """:class:`~.port.EventBus` on NATS JetStream. Make one with :meth:`connect`."""

    def __init__(
        self,
        client: Client,
        connection: _Connection,
        *,
        instance_id: str,
        options: JetStreamOptions,
        streams: tuple[StreamSpec, ...],
    ) -> None:
        self._client = client
        self._js: JetStreamContext = client.jetstream(
            timeout=options.publish_attempt_timeout.total_seconds()
        )
        self._connection = connection
        self._instance_id = instance_id
        self._options = options
        self._streams = streams

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str,
        connect_timeout: float | timedelta = 2.0,
        retries: int = 5,
        backoff: float | timedelta = 0.5,
        instance_id: str | None = None,
        options: JetStreamOptions | None = None,
        streams: Iterable[StreamSpec] = STREAMS,
    ) -> JetStreamBus:
        """Connect to ``url`` (comma-separated ``nats://`` URLs) and declare the streams.

        Args:
            name: the connection's name as NATS monitoring shows it.
            connect_timeout: seconds (or a timedelta) one attempt may take.
            retries: attempts after the first one (``retries=2`` tries three times).
            backoff: pause before the first retry; doubled before each next one (capped
                at 30 s).
            instance_id: names this replica's BROADCAST consumers; defaults to ``name``.
            options: tuning; see :class:`JetStreamOptions`.
            streams: the stream catalog (tests may pass their own).

        Raises:
            UnavailableError: no attempt succeeded; the message names the URL (without
                credentials), the last reason and the number of attempts.
            ConfigurationError: a stream exists with settings that cannot be changed.
        """
        options = options or JetStreamOptions()
        servers = [part.strip() for part in url.split(",") if part.strip()]
        if not servers:
            raise ConfigurationError(f"NATS_URL {url!r} names no server; expected nats://HOST:PORT")
        shown = ",".join(redacted_url(server) for server in servers)
        catalog = tuple(streams)
        attempts = retries + 1
        delay = _seconds(backoff)
        timeout = _seconds(connect_timeout)
        # nats-py annotates these two as int but sleeps / waits on them: floats work
        reconnect_wait = options.reconnect_time_wait.total_seconds()
        reason = "not tried"
        for attempt in range(1, attempts + 1):
            connection = _Connection(shown)
            client = Client()
            try:
                # nats-py retries forever inside connect() when reconnects are unbounded,
                # so the attempt is bounded here; the last error comes from error_cb.
                async with asyncio.timeout(timeout):
                    await client.connect(
                        servers,
                        name=name,
                        connect_timeout=timeout,  # type: ignore[arg-type]
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=reconnect_wait,  # type: ignore[arg-type]
                        error_cb=connection.on_error,
                        disconnected_cb=connection.on_disconnected,
                        reconnected_cb=connection.on_reconnected,
                    )
                    connection.connected_once = True
                    bus = cls(
                        client,
                        connection,
                        instance_id=instance_id or name,
                        options=options,
                        streams=catalog,
                    )
                    await bus._declare_streams()
                _log.info("bus.connected", url=shown, streams=len(catalog))
                return bus
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                reason = _reason(connection.last_error if isinstance(exc, TimeoutError) else exc)
                _log.warning(
                    "bus.connect_failed", url=shown, attempt=attempt, of=attempts, reason=reason
                )
            except BaseException:
                await _close_quietly(client, connection)
                raise
            await _close_quietly(client, connection)
            if attempt < attempts:
                await asyncio.sleep(min(delay, _MAX_BACKOFF_SECONDS))
                delay *= 2
        raise UnavailableError(f"cannot reach NATS at {shown}: {reason} after {attempts} attempts")

    async def _declare_streams(self) -> None:
        for spec in self._streams:
            wanted = StreamConfig(
                name=spec.name,
                subjects=list(spec.subjects),
                retention=RetentionPolicy.WORK_QUEUE if spec.work_queue else RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=self._options.duplicate_window.total_seconds(),
                max_age=spec.max_age.total_seconds(),
            )
            try:
                current = (await self._js.stream_info(spec.name)).config
            except nats.js.errors.NotFoundError:
                await self._js.add_stream(wanted)
                _log.info("bus.stream_created", stream=spec.name)
                continue
            managed = {key: getattr(wanted, key) for key in _MANAGED_STREAM_FIELDS}
            if all(getattr(current, key) == value for key, value in managed.items()):
                continue
            try:
                # evolve keeps what operators set and we do not manage (replicas, limits)
                await self._js.update_stream(current.evolve(**managed))
            except nats.js.errors.ServiceUnavailableError:
                raise  # transient: the connect loop tries again
            except nats.js.errors.APIError as exc:
                wanted_text = ", ".join(
                    f"{key}={getattr(value, 'value', value)}" for key, value in managed.items()
                )
                raise ConfigurationError(
                    f"stream {spec.name} exists with settings that cannot become "
                    f"{wanted_text}: {exc.description}; delete or migrate the stream"
                ) from exc
            _log.info("bus.stream_updated", stream=spec.name)

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        event_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """See :meth:`EventBus.publish`; retried until ``publish_timeout`` (safe: de-dup)."""
        spec = check_publish(subject, event_id, self._streams)
        all_headers = {**(headers or {}), Header.MSG_ID.value: event_id, EVENT_ID_HEADER: event_id}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._options.publish_timeout.total_seconds()
        attempt_timeout = self._options.publish_attempt_timeout.total_seconds()
        pause = 0.05
        attempts = 0
        while True:
            attempts += 1
            remaining = deadline - loop.time()
            try:
                ack = await self._js.publish(
                    subject,
                    data,
                    timeout=max(0.01, min(remaining, attempt_timeout)),
                    stream=spec.name,
                    headers=all_headers,
                )
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
                raise UnavailableError(f"cannot publish {subject}: the bus is closed") from exc
            except nats.js.errors.BadRequestError as exc:
                raise InvalidArgumentError(
                    f"JetStream refused {subject} ({event_id}): {exc.description}"
                ) from exc
            except (TimeoutError, nats.errors.Error) as exc:
                # Reconnecting, or JetStream not ready after a restart: wait and repeat.
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise UnavailableError(
                        f"cannot publish {subject} ({event_id}) to NATS at "
                        f"{self._connection.url}: {_reason(exc)} after {attempts} attempts"
                    ) from exc
                await asyncio.sleep(min(pause, remaining))
                pause = min(pause * 2, 1.0)
                continue
            if ack.duplicate:
                _log.debug("bus.publish_duplicate", subject=subject, event_id=event_id)
            return

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
        """See :meth:`EventBus.subscribe`; the result's ``consumer`` is the NATS consumer name."""
        spec = check_subscribe(
            subject,
            consumer=consumer,
            delivery=delivery,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            streams=self._streams,
        )
        plan = ConsumerPlan.make(
            stream=spec.name,
            subject=subject,
            consumer=consumer,
            delivery=delivery,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            instance_id=self._instance_id,
        )
        subscription = JetStreamSubscription(
            self._js,
            plan,
            handler,
            deduplicator=deduplicator,
            options=self._options,
            on_stopped=self._connection.subscriptions.discard,
        )
        try:
            await subscription.open()
        except nats.js.errors.BadRequestError as exc:
            raise InvalidArgumentError(
                f"JetStream refused consumer {plan.name} on {subject}: {exc.description}",
                field="consumer",
            ) from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise UnavailableError(
                f"cannot subscribe {plan.name} to {subject}: {_reason(exc)}"
            ) from exc
        self._connection.subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        """Stop every subscription (in-flight handlers finish), flush and disconnect."""
        self._connection.closing = True
        await asyncio.gather(
            *(subscription.stop() for subscription in list(self._connection.subscriptions))
        )
        if self._client.is_connected:
            with contextlib.suppress(Exception):
                await self._client.drain()
        await _close_quietly(self._client, self._connection)


async def _close_quietly(client: Client, connection: _Connection) -> None:
    connection.closing = True  # our own disconnect is no news for the logs
    if not client.is_closed:
        with contextlib.suppress(Exception):
            await client.close()
