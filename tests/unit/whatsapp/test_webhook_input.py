"""The webhook's pure parts: the signature check and the notification parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from llmproxy.platform.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from llmproxy.whatsapp.payload import parse_notification
from llmproxy.whatsapp.signature import sign, verify_signature
from tests.support.fake_graph import (
    PHONE_NUMBER_ID,
    notification,
    signed_headers,
    status_update,
    text_message,
)

SECRET = "app-secret"


def test_metas_signature_of_the_raw_body_is_accepted() -> None:
    body = notification([text_message("31600000001", "hi", message_id="wamid.1")])
    header = signed_headers(body, SECRET)["x-hub-signature-256"]
    assert header == sign(body, SECRET)
    verify_signature(body, header, SECRET)


def test_a_missing_signature_is_unauthenticated_and_a_wrong_one_forbidden() -> None:
    body = b'{"object": "whatsapp_business_account"}'
    with pytest.raises(UnauthenticatedError, match="missing X-Hub-Signature-256"):
        verify_signature(body, None, SECRET)
    with pytest.raises(UnauthenticatedError):
        verify_signature(body, "  ", SECRET)
    with pytest.raises(PermissionDeniedError, match="does not match"):
        verify_signature(body, sign(body, "another-secret"), SECRET)
    # the same JSON re-serialised is a different body: the signature covers the raw bytes
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    with pytest.raises(PermissionDeniedError):
        verify_signature(reformatted, sign(body, SECRET), SECRET)
    with pytest.raises(PermissionDeniedError):
        verify_signature(body, sign(body, SECRET).removeprefix("sha256="), SECRET)


def test_messages_and_statuses_are_read_from_the_cloud_api_shape() -> None:
    body = notification(
        [
            text_message("31600000001", "What is the capital of France?", message_id="wamid.1",
                         timestamp=1_700_000_000),
            {"from": "31600000002", "id": "wamid.2", "timestamp": "1700000001", "type": "image",
             "image": {"id": "media-1", "mime_type": "image/jpeg"}},
        ],
        [status_update("wamid.out.1", "delivered", "31600000001")],
    )  # fmt: skip
    parsed = parse_notification(body, phone_number_id=PHONE_NUMBER_ID)
    first, second = parsed.messages
    assert (first.wa_id, first.kind, first.text) == (
        "31600000001",
        "text",
        "What is the capital of France?",
    )
    assert first.sent_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert (second.kind, second.text) == ("image", "")
    assert [(s.message_id, s.status) for s in parsed.statuses] == [("wamid.out.1", "delivered")]


def test_changes_for_another_number_are_skipped_not_refused() -> None:
    body = notification(
        [text_message("31600000001", "hi", message_id="wamid.1")], phone_number_id="999"
    )
    parsed = parse_notification(body, phone_number_id=PHONE_NUMBER_ID)
    assert parsed.messages == () and parsed.skipped == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"{not json", "body", "not JSON"),
        (b"[]", "body", "JSON object"),
        (b'{"object": "page", "entry": [{}]}', "object", "whatsapp_business_account"),
        (b'{"object": "whatsapp_business_account", "entry": []}', "entry", "empty"),
        (b'{"object": "whatsapp_business_account"}', "entry", "empty"),
        (b'{"object": "whatsapp_business_account", "entry": {}}', "entry", "array"),
        (
            notification([{"from": "1", "id": "wamid.1", "timestamp": "x", "type": "text",
                           "text": {"body": "hi"}}]),
            "entry[0].changes[0].value.messages[0].timestamp",
            "Unix seconds",
        ),
        (
            notification([{"from": "1", "id": "wamid.1", "timestamp": "1", "type": "text"}]),
            "entry[0].changes[0].value.messages[0].text",
            "object",
        ),
        (
            notification([{"id": "wamid.1", "timestamp": "1", "type": "text",
                           "text": {"body": "hi"}}]),
            "entry[0].changes[0].value.messages[0].from",
            "non-empty",
        ),
    ],
)  # fmt: skip
def test_malformed_notifications_name_the_problem(body: bytes, field: str, words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words) as caught:
        parse_notification(body, phone_number_id=PHONE_NUMBER_ID)
    assert caught.value.field == field
