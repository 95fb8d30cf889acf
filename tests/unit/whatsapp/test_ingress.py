"""The webhook in a thread of its own: it serves while the service's loop is blocked, it
publishes through the bus its thread opened, and it stops cleanly (closing that bus)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import pytest

from llmproxy.platform.bus.port import EventBus
from llmproxy.whatsapp.ingress import WebhookThread
from llmproxy.whatsapp.intake import publish_notification
from llmproxy.whatsapp.webhook import build_webhook_app
from tests.support.fake_graph import PHONE_NUMBER_ID, notification, signed_headers, text_message

SECRET = "app-secret"


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.closed = False

    async def publish(
        self, subject: str, data: bytes, *, event_id: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.published.append((subject, event_id))

    async def close(self) -> None:
        self.closed = True


def _webhook(bus_box: list[RecordingBus], port: int = 0, **kwargs) -> WebhookThread:  # type: ignore[no-untyped-def]
    async def connect() -> EventBus:
        bus = RecordingBus()
        bus_box.append(bus)
        return bus  # type: ignore[return-value]

    def app(bus: EventBus):  # type: ignore[no-untyped-def]
        return build_webhook_app(
            lambda n, now: publish_notification(bus, n, now),
            path="/webhook",
            app_secret=SECRET,
            verify_token="t",
            phone_number_id=PHONE_NUMBER_ID,
            max_body_bytes=4096,
            clock=lambda: datetime.now(UTC),
        )

    return WebhookThread(app, connect, host="127.0.0.1", port=port, drain_timeout_s=1, **kwargs)


async def test_the_webhook_answers_while_the_service_loop_is_busy() -> None:
    buses: list[RecordingBus] = []
    webhook = _webhook(buses)
    await webhook.start()
    try:
        body = notification([text_message("31600000001", "hi", message_id="wamid.t1")])
        url = f"http://127.0.0.1:{webhook.port}/webhook"

        def post() -> tuple[int, float]:
            response = httpx.post(url, content=body, headers=signed_headers(body, SECRET))
            return response.status_code, time.perf_counter()

        posting = asyncio.get_running_loop().run_in_executor(None, post)
        time.sleep(2.0)  # noqa: ASYNC251 - the service's loop blocked: a webhook on it could not answer
        unblocked = time.perf_counter()
        status, answered = await posting
        assert status == 200 and answered < unblocked
        assert buses[0].published == [("whatsapp.inbound", "wa-in-wamid.t1")]
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url, content=body, headers={"x-hub-signature-256": "sha256=00"}
            )
        assert forged.status_code == 403 and len(buses[0].published) == 1
    finally:
        await webhook.stop()
    assert buses[0].closed


async def test_a_port_in_use_fails_the_start_with_the_reason() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        buses: list[RecordingBus] = []
        webhook = _webhook(buses, port=taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            await webhook.start()
        await webhook.stop()
        assert buses[0].closed  # the bus it opened is closed again
    finally:
        taken.close()


def test_serving_on_the_service_loop_needs_the_shared_bus() -> None:
    with pytest.raises(ValueError, match="shared_bus"):
        _webhook([], own_thread=False)
