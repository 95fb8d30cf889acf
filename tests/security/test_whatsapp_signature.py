"""The WhatsApp webhook's signature check cannot be skipped by configuration.

There is no development / production switch and no setting that turns the check off:
the webhook refuses to start without an app secret (an HMAC keyed with "" is one anyone
can compute), and a running webhook refuses every POST that is not signed with the
secret — even when the process was started with every plausible "turn it off" variable.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime

import httpx
import pytest

from llmproxy.platform.errors import ConfigurationError
from llmproxy.whatsapp.service import Settings
from llmproxy.whatsapp.webhook import build_webhook_app
from tests.security.conftest import SecureStack
from tests.security.probes import probed
from tests.support.fake_graph import PHONE_NUMBER_ID, notification, signed_headers, text_message
from tests.support.services import LLMPROXY

WA_ID = "31699990001"


async def _publish(*args: object) -> None:
    raise AssertionError("nothing may be published")


@pytest.mark.parametrize("secret", ["", "   "])
def test_the_webhook_app_cannot_be_built_without_a_secret(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="LLMPROXY_WHATSAPP_APP_SECRET"):
        build_webhook_app(
            _publish,
            path="/webhook",
            app_secret=secret,
            verify_token="t",
            phone_number_id=PHONE_NUMBER_ID,
            max_body_bytes=4096,
            clock=lambda: datetime.now(UTC),
        )
    # and no setting exists that could switch the check off
    switches = [f for f in Settings.model_fields if re.search(r"sign|insecure|skip|verify_", f)]
    assert switches == ["whatsapp_verify_token"], switches  # the GET handshake's token only
    probed("whatsapp", f"build_webhook_app(app_secret={secret!r})", "ConfigurationError")


def test_the_service_refuses_to_start_the_webhook_without_the_app_secret(
    secure_stack: SecureStack,
) -> None:
    base = secure_stack.services["whatsapp"].env
    for secret in (None, "  "):
        env = {k: v for k, v in base.items() if k != "LLMPROXY_WHATSAPP_APP_SECRET"}
        if secret is not None:
            env["LLMPROXY_WHATSAPP_APP_SECRET"] = secret
        env["LLMPROXY_GRPC_PORT"] = "0"
        env["LLMPROXY_WEBHOOK_PORT"] = "0"
        started = time.monotonic()
        done = subprocess.run(
            [LLMPROXY, "serve", "whatsapp"], env=env, capture_output=True, timeout=60
        )
        assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
        assert b"LLMPROXY_WHATSAPP_APP_SECRET" in done.stderr, done.stderr[-2000:]
        probed(
            "whatsapp",
            f"serve with the webhook on and app secret {'unset' if secret is None else 'blank'}",
            f"exit 2 naming LLMPROXY_WHATSAPP_APP_SECRET ({time.monotonic() - started:.1f}s)",
        )


def test_unsigned_or_wrongly_signed_posts_are_refused_and_change_nothing(
    secure_stack: SecureStack,
) -> None:
    secret = secure_stack.secrets["WhatsApp app secret"]
    message = text_message(WA_ID, "let me in", message_id="wamid.security.forged")
    body = notification([message])
    attempts = {
        "no signature": ({"content-type": "application/json"}, 401),
        "empty signature": ({"x-hub-signature-256": ""}, 401),
        "signed with an empty key": (signed_headers(body, ""), 403),
        "signed with the verify token": (
            signed_headers(body, secure_stack.secrets["WhatsApp verify token"]),
            403,
        ),
        "bare 'sha256='": ({"x-hub-signature-256": "sha256="}, 403),
        "right signature, other body": (signed_headers(body + b" ", secret), 403),
        "sha1 scheme": ({"x-hub-signature": "sha1=" + "0" * 40}, 401),
    }
    with httpx.Client(timeout=10) as client:
        for what, (headers, status) in attempts.items():
            response = client.post(secure_stack.webhook_url, content=body, headers=headers)
            assert response.status_code == status, (what, response.status_code, response.text)
            assert "signature" in response.json()["error"].lower(), response.text
    time.sleep(0.5)
    stored = secure_stack.query(
        "select count(*) as n from whatsapp_messages where message_id = $1", message["id"]
    )
    assert stored == [{"n": 0}]
    assert not secure_stack.graph.sent(WA_ID)
    probed(
        "whatsapp",
        f"{len(attempts)} forged POSTs to a webhook started with 4 'skip the check' variables",
        "401/403 each; nothing stored, nothing sent",
    )
    # the control: the same body signed with the secret is accepted
    response = httpx.post(
        secure_stack.webhook_url, content=body, headers=signed_headers(body, secret), timeout=10
    )
    assert response.status_code == 200 and response.json()["received"] == 1
