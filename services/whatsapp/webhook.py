"""The webhook Meta calls: the verification handshake and signed notifications.

``POST`` does the least that makes a message safe — size check, signature check, parse,
publish to JetStream (stored when the publish returns) — and answers 200; the intake
consumer and the workers do the rest. Nothing else is done on this path: the signature
is checked before the JSON is parsed (orjson), the events are built without a uuid, the
answer is encoded once with orjson, and nothing is logged unless JetStream fails. With
``LLMPROXY_WEBHOOK_OWN_THREAD`` the app runs on a loop of its own
(``ingress.WebhookThread``), so a POST does not wait behind the workers' loop work.

Status codes: 401 no signature, 403 wrong signature, 413 body over the limit (refused
before it is read whole), 400 malformed notification, 503 JetStream did not store it
(Meta delivers it again later).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime

import orjson
import structlog
from prometheus_client import Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from llmproxy.platform.errors import ConfigurationError, LLMProxyError, http_status_for
from llmproxy.whatsapp.payload import Notification, parse_notification
from llmproxy.whatsapp.signature import SIGNATURE_HEADER, verify_signature

__all__ = ["build_webhook_app"]

log = structlog.get_logger(__name__)

ACKS = Histogram(
    "llmproxy_whatsapp_webhook_seconds",
    "Time to acknowledge a webhook POST",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
REFUSED = Counter("llmproxy_whatsapp_webhook_refused_total", "Webhook POSTs refused", ["status"])


def _error(status: int, message: str) -> JSONResponse:
    REFUSED.labels(str(status)).inc()
    return JSONResponse({"error": message}, status_code=status)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def build_webhook_app(
    publish: Callable[[Notification, datetime], Awaitable[None]],
    *,
    path: str,
    app_secret: str,
    verify_token: str,
    phone_number_id: str,
    max_body_bytes: int,
    clock: Callable[[], datetime],
) -> Starlette:
    """The Starlette app; ``publish`` stores a verified notification durably (JetStream).

    Raises ConfigurationError without an app secret: an HMAC keyed with "" is one anyone
    can compute, so there is no way to run this webhook with the signature check off.
    """
    if not app_secret.strip():
        raise ConfigurationError(
            "LLMPROXY_WHATSAPP_APP_SECRET: the webhook verifies every POST's "
            f"{SIGNATURE_HEADER} with the app secret and cannot run without one"
        )

    async def verify(request: Request) -> Response:
        params = request.query_params
        token = params.get("hub.verify_token", "")
        if (
            params.get("hub.mode") == "subscribe"
            and verify_token
            and hmac.compare_digest(token.encode(), verify_token.encode())
        ):
            return PlainTextResponse(params.get("hub.challenge", ""))
        return _error(403, "verification failed: wrong hub.mode or hub.verify_token")

    async def notify(request: Request) -> Response:
        with ACKS.time():
            try:
                raw = await _read_body(request, max_body_bytes)
            except _TooLarge:
                return _error(413, f"the body is over {max_body_bytes} bytes")
            except ClientDisconnect:
                return _error(400, "the client went away mid-body")
            try:
                verify_signature(raw, request.headers.get(SIGNATURE_HEADER), app_secret)
                notification = parse_notification(raw, phone_number_id=phone_number_id)
            except LLMProxyError as exc:
                return _error(int(http_status_for(exc)), exc.message)
            try:
                await publish(notification, clock())
            except Exception as exc:  # not stored: Meta must deliver it again
                log.warning("a notification could not be stored; answering 503", error=str(exc))
                return _error(503, "temporarily unable to accept messages")
            return Response(
                orjson.dumps(
                    {
                        "received": len(notification.messages),
                        "statuses": len(notification.statuses),
                        "skipped_changes": notification.skipped,
                    }
                ),
                media_type="application/json",
            )

    return Starlette(
        routes=[
            Route(path, verify, methods=["GET"]),
            Route(path, notify, methods=["POST"]),
        ]
    )
