"""From the webhook to the inbox, through JetStream.

The webhook acknowledges Meta as soon as JetStream has stored each message
(``whatsapp.inbound``) and status (``whatsapp.status``): a publish is a millisecond, where a
database write on a busy SQLite file can wait for other writers for a long time. The intake
consumer (shared by the replicas) then writes them to the inbox, whose unique message id
de-duplicates Meta's redeliveries for good (JetStream's own duplicate window is only two
minutes), and wakes the worker. A failed write is redelivered by JetStream.

Writes are group-committed: several subscriptions of the shared consumer run at once, and
the messages their handlers receive meanwhile are written in one transaction (each
handler returns — and its message is acked — only once its row is committed). One
transaction per message could not keep up with a busy webhook on a shared SQLite file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from llmproxy.platform.bus.port import Envelope, EventBus, Subscription
from llmproxy.platform.bus.subjects import WHATSAPP_INBOUND, WHATSAPP_STATUS
from llmproxy.platform.events import decode_event, publish_event
from llmproxy.v1 import events_pb2, whatsapp_pb2
from llmproxy.whatsapp.inbox import SqlInbox
from llmproxy.whatsapp.payload import Inbound, Notification, StatusUpdate

__all__ = ["INBOUND_CONSUMER", "STATUS_CONSUMER", "InboxIntake", "publish_notification"]

INBOUND_CONSUMER = "whatsapp-inbox"
STATUS_CONSUMER = "whatsapp-statuses"
SOURCE = "whatsapp"


def _meta(event_id: str, now: datetime) -> events_pb2.EventMeta:
    # the id is Meta's message id (JetStream's duplicate window drops a redelivery): no
    # uuid4 of new_event_meta's to make and throw away on the webhook's path
    meta = events_pb2.EventMeta(event_id=event_id, source=SOURCE)
    meta.occurred_at.FromDatetime(now)
    return meta


def _inbound_event(message: Inbound, now: datetime) -> whatsapp_pb2.WhatsAppInbound:
    meta = _meta(f"wa-in-{message.message_id}", now)
    event = whatsapp_pb2.WhatsAppInbound(
        meta=meta,
        message_id=message.message_id,
        wa_id=message.wa_id,
        kind=message.kind,
        text=message.text,
    )
    event.sent_at.FromDatetime(message.sent_at)
    return event


def _status_event(status: StatusUpdate, now: datetime) -> whatsapp_pb2.WhatsAppStatusEvent:
    meta = _meta(f"wa-st-{status.message_id}-{status.status}", now)
    event = whatsapp_pb2.WhatsAppStatusEvent(
        meta=meta, message_id=status.message_id, status=status.status, error=status.error
    )
    event.at.FromDatetime(status.at)
    return event


async def publish_notification(bus: EventBus, notification: Notification, now: datetime) -> None:
    """Store every message and status of ``notification`` in JetStream (all at once; the
    same message published again — a redelivery — is stored once within two minutes)."""
    if len(notification.messages) == 1 and not notification.statuses:  # the usual POST
        await publish_event(bus, WHATSAPP_INBOUND, _inbound_event(notification.messages[0], now))
        return
    events = [
        *(
            publish_event(bus, WHATSAPP_INBOUND, _inbound_event(m, now))
            for m in notification.messages
        ),
        *(
            publish_event(bus, WHATSAPP_STATUS, _status_event(s, now))
            for s in notification.statuses
        ),
    ]
    await asyncio.gather(*events)


class InboxIntake:
    """The consumers that move events from JetStream into the inbox."""

    def __init__(
        self,
        inbox: SqlInbox,
        *,
        wake: Callable[[], None],
        clock: Callable[[], datetime],
        concurrency: int = 8,
    ) -> None:
        self._inbox = inbox
        self._wake = wake
        self._clock = clock
        self._concurrency = concurrency
        self._waiting: list[tuple[Inbound | StatusUpdate, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def _store(self, item: Inbound | StatusUpdate) -> None:
        """Return once ``item`` is committed (with whatever else arrived meanwhile)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            messages = tuple(i for i, _ in batch if isinstance(i, Inbound))
            statuses = tuple(i for i, _ in batch if isinstance(i, StatusUpdate))
            try:
                new = await self._inbox.accept(Notification(messages, statuses), self._clock())
            except Exception as exc:  # each handler raises: JetStream redelivers its message
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
            if new:
                self._wake()

    async def on_inbound(self, envelope: Envelope) -> None:
        event = decode_event(envelope, whatsapp_pb2.WhatsAppInbound)
        message = Inbound(
            message_id=event.message_id,
            wa_id=event.wa_id,
            kind=event.kind,
            text=event.text,
            sent_at=event.sent_at.ToDatetime(UTC),
        )
        await self._store(message)

    async def on_status(self, envelope: Envelope) -> None:
        event = decode_event(envelope, whatsapp_pb2.WhatsAppStatusEvent)
        status = StatusUpdate(
            message_id=event.message_id,
            status=event.status,
            at=event.at.ToDatetime(UTC),
            error=event.error,
        )
        await self._store(status)

    async def subscribe(self, bus: EventBus) -> list[Subscription]:
        """Start both consumers (``concurrency`` subscriptions of the inbound one, sharing
        its messages); the subscriptions, to stop."""
        subscriptions = [
            await bus.subscribe(WHATSAPP_INBOUND, self.on_inbound, consumer=INBOUND_CONSUMER)
            for _ in range(self._concurrency)
        ]
        subscriptions.append(
            await bus.subscribe(WHATSAPP_STATUS, self.on_status, consumer=STATUS_CONSUMER)
        )
        return subscriptions
