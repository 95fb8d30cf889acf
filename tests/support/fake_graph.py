"""A local stand-in for the WhatsApp Graph API: a real HTTP server that records every call.

``POST /<version>/<phone_number_id>/messages`` answers like Meta (``{"messages": [{"id":
"wamid..."}]}``) and records the call (path, headers, JSON body). Tell it to fail next:
``graph.fail_next(429, 500)`` answers the next two calls with those statuses (then 200
again). Used by the whatsapp tests and benchmark in place of graph.facebook.com.

The other half of Meta, the webhook's caller: :func:`notification` builds a body in the
Cloud API's shape and :func:`signed_headers` signs it the way Meta does.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "PHONE_NUMBER_ID",
    "FakeGraphServer",
    "GraphCall",
    "notification",
    "signed_headers",
    "status_update",
    "text_message",
]

PHONE_NUMBER_ID = "106540352242922"


def text_message(wa_id: str, text: str, *, message_id: str, timestamp: int | None = None) -> dict:
    """One inbound text message as the Cloud API sends it."""
    return {
        "from": wa_id,
        "id": message_id,
        "timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "type": "text",
        "text": {"body": text},
    }


def status_update(message_id: str, status: str, recipient: str) -> dict:
    return {
        "id": message_id,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
    }


def notification(
    messages: list[dict] | None = None,
    statuses: list[dict] | None = None,
    *,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> bytes:
    """A webhook body carrying ``messages`` and ``statuses``."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
    }
    if messages:
        value["contacts"] = [
            {"profile": {"name": "Test User"}, "wa_id": m.get("from", "")} for m in messages
        ]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


def signed_headers(body: bytes, app_secret: str) -> dict[str, str]:
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": f"sha256={digest}"}


@dataclass(frozen=True)
class GraphCall:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def to(self) -> str:
        return str(self.body.get("to", ""))

    @property
    def text(self) -> str:
        """The text of a text message ("" for templates)."""
        return str(self.body.get("text", {}).get("body", ""))


class FakeGraphServer:
    """``with FakeGraphServer() as graph: graph.base_url``; ``graph.sent()`` lists the
    messages it accepted (status 200), ``graph.calls`` every call."""

    def __init__(self, *, retry_after: str | None = None) -> None:
        self.calls: list[GraphCall] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._retry_after = retry_after
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real API

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {}
                status, payload = outer._answer(self.path, body)
                call = GraphCall(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, status
                )
                with outer._lock:
                    outer.calls.append(call)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status == 429 and outer._retry_after is not None:
                    self.send_header("retry-after", outer._retry_after)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            status = self._failures.pop(0) if self._failures else 200
        if status != 200:
            code = 130429 if status == 429 else 1
            return status, {"error": {"message": f"fake failure {status}", "code": code}}
        if not path.endswith("/messages") or body.get("messaging_product") != "whatsapp":
            return 400, {"error": {"message": "not a messages call", "code": 100}}
        to = str(body.get("to", ""))
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": f"wamid.fake.{next(self._ids)}"}],
        }

    def fail_next(self, *statuses: int) -> None:
        """Answer the next calls with ``statuses``, in order (200: answer normally)."""
        with self._lock:
            self._failures.extend(statuses)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def sent(self, to: str | None = None) -> list[GraphCall]:
        """Calls answered 200, optionally only those to ``to``."""
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if c.status == 200 and (to is None or c.to == to)]

    def wait_for(
        self, count: int, *, to: str | None = None, timeout_s: float = 30
    ) -> list[GraphCall]:
        """Block until ``count`` messages were accepted (to ``to``); return them."""
        deadline = time.monotonic() + timeout_s
        while True:
            sent = self.sent(to)
            if len(sent) >= count or time.monotonic() > deadline:
                return sent
            time.sleep(0.05)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeGraphServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
