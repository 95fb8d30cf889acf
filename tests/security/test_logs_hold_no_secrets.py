"""No configured secret ever reaches a log.

Runs last in the package (see conftest): by then every probe of the suite has gone through
the stack. This test adds the paths that handle each secret — a WhatsApp message answered
end to end (webhook signature, gateway API key, provider key, Graph access token), the
verification handshake, a provider that fails (its error path, with retries), a Graph API
that fails, wrong keys — and then greps every process's log for every secret.
"""

from __future__ import annotations

import time

import httpx

from llmproxy.gateway.fake_upstream import ANSWER
from tests.security.conftest import BROKEN_MODEL, SecureStack
from tests.security.probes import probed
from tests.support.fake_graph import notification, signed_headers, text_message

WA_ID = "31699990002"


def _replies(stack: SecureStack, wa_id: str, count: int, timeout_s: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        texts = [c.text for c in stack.graph.sent(wa_id)]
        if len(texts) >= count:
            return texts
        assert time.monotonic() < deadline, f"{len(texts)} replies to {wa_id}, not {count}"
        time.sleep(0.1)


def test_no_log_line_of_any_process_holds_a_configured_secret(secure_stack: SecureStack) -> None:
    secrets = secure_stack.secrets
    app_secret = secrets["WhatsApp app secret"]
    # a question answered over WhatsApp: every credential on the path is used
    body = notification([text_message(WA_ID, "What is the capital of France?",
                                      message_id="wamid.security.logs.1")])  # fmt: skip
    response = httpx.post(
        secure_stack.webhook_url, content=body, headers=signed_headers(body, app_secret)
    )
    assert response.status_code == 200, response.text
    assert _replies(secure_stack, WA_ID, 1) == [ANSWER]
    sent = secure_stack.graph.sent(WA_ID)[0]
    assert sent.headers["authorization"] == f"Bearer {secrets['WhatsApp access token']}"
    # the Graph API failing: the send is retried, and its errors logged
    secure_stack.graph.fail_next(500, 503)
    body = notification([text_message(WA_ID, "/help", message_id="wamid.security.logs.2")])
    httpx.post(secure_stack.webhook_url, content=body, headers=signed_headers(body, app_secret))
    _replies(secure_stack, WA_ID, 2)
    # the verification handshake, right and wrong
    params = {"hub.mode": "subscribe", "hub.challenge": "42"}
    ok = httpx.get(
        secure_stack.webhook_url,
        params={**params, "hub.verify_token": secrets["WhatsApp verify token"]},
    )
    assert ok.text == "42"
    httpx.get(secure_stack.webhook_url, params={**params, "hub.verify_token": "nope"})
    # a provider that fails (HTTP 500, retried): the provider key is on every attempt
    broken = secure_stack.extra["broken"]
    failed = httpx.post(
        f"{secure_stack.http_url}/chat/completions",
        json={"model": BROKEN_MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {secure_stack.keys['acme']}"},
        timeout=30,
    )
    assert failed.status_code in (502, 503), failed.text
    assert broken.requests, "the failing provider was never called"
    # a key with a real id and a wrong secret, and one with a real secret and no id
    acme = secure_stack.keys["acme"]
    for wrong in (acme[:-4] + "AAAA", "llp_" + acme.split("_", 2)[2]):
        httpx.post(
            f"{secure_stack.http_url}/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {wrong}"},
        )
    time.sleep(1.0)  # the last lines reach the files

    logs = secure_stack.all_logs()
    assert {f"{name}.log" for name in secure_stack.services} <= set(logs), sorted(logs)
    assert sum(len(text) for text in logs.values()) > 10_000  # they did log (debug level)
    leaks = []
    for log_name, text in logs.items():
        for secret_name, value in secrets.items():
            # the whole value, and its last 16 characters (a truncated or masked echo)
            if value in text or value[-16:] in text:
                leaks.append(f"{secret_name} in {log_name}")
    assert not leaks, leaks
    probed(
        "secrets in logs",
        f"{len(secrets)} configured secrets x {len(logs)} logs (gateway, whatsapp at debug)",
        "none found (whole value or last 16 chars)",
    )
