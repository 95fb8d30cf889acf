"""The webhook's HTTP behaviour, in process (Starlette's test client): the handshake, and
what is stored (published) or refused with which status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from llmproxy.platform.errors import UnavailableError
from llmproxy.whatsapp.payload import Notification
from llmproxy.whatsapp.webhook import build_webhook_app
from tests.support.fake_graph import (
    PHONE_NUMBER_ID,
    notification,
    signed_headers,
    status_update,
    text_message,
)

SECRET, TOKEN = "app-secret", "verify-me"


class Publisher:
    def __init__(self) -> None:
        self.published: list[Notification] = []
        self.fail = False

    async def __call__(self, notification: Notification, now: datetime) -> None:
        if self.fail:
            raise UnavailableError("JetStream did not answer")
        self.published.append(notification)


@pytest.fixture
def publisher() -> Publisher:
    return Publisher()


@pytest.fixture
def client(publisher: Publisher) -> TestClient:
    app = build_webhook_app(
        publisher,
        path="/webhook",
        app_secret=SECRET,
        verify_token=TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        max_body_bytes=4096,
        clock=lambda: datetime(2026, 12, 2, tzinfo=UTC),
    )
    return TestClient(app)


def test_the_verification_handshake(client: TestClient) -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "8329"}
    response = client.get("/webhook", params=ok)
    assert (response.status_code, response.text) == (200, "8329")
    for wrong in ({"hub.verify_token": "nope"}, {"hub.mode": "unsubscribe"}):
        assert client.get("/webhook", params={**ok, **wrong}).status_code == 403
    assert client.get("/webhook").status_code == 403


def test_a_signed_notification_is_stored_and_acknowledged(
    client: TestClient, publisher: Publisher
) -> None:
    body = notification(
        [text_message("31600000001", "hi", message_id="wamid.1")],
        [status_update("wamid.out.1", "sent", "31600000001")],
    )
    response = client.post("/webhook", content=body, headers=signed_headers(body, SECRET))
    assert response.status_code == 200
    assert response.json() == {"received": 1, "statuses": 1, "skipped_changes": 0}
    (stored,) = publisher.published
    assert stored.messages[0].message_id == "wamid.1"


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{}", {}, 401, "missing X-Hub-Signature-256"),
        (b"{}", {"x-hub-signature-256": "sha256=00"}, 403, "does not match"),
        (b"{nope", None, 400, "not JSON"),
        (b'{"object": "user", "entry": [{}]}', None, 400, "object must be"),
        (b'{"object": "whatsapp_business_account", "entry": []}', None, 400, "entry is empty"),
        (b"x" * 5000, None, 413, "over 4096 bytes"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_stored(
    client: TestClient,
    publisher: Publisher,
    body: bytes,
    headers: dict[str, str] | None,
    status: int,
    words: str,
) -> None:
    sent = signed_headers(body, SECRET) if headers is None else headers
    response = client.post("/webhook", content=body, headers=sent)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert publisher.published == []


def test_an_oversize_body_is_refused_by_its_declared_length_before_it_is_read(
    client: TestClient, publisher: Publisher
) -> None:
    def endless():  # type: ignore[no-untyped-def]
        yield b"x" * 1024
        raise AssertionError("the body was read past its declared length")

    response = client.post("/webhook", content=endless(), headers={"content-length": "1000000"})
    assert response.status_code == 413 and publisher.published == []


def test_when_the_message_cannot_be_stored_meta_is_told_to_retry(
    client: TestClient, publisher: Publisher
) -> None:
    publisher.fail = True
    body = notification([text_message("31600000001", "hi", message_id="wamid.1")])
    response = client.post("/webhook", content=body, headers=signed_headers(body, SECRET))
    assert response.status_code == 503
