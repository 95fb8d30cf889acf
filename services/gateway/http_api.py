"""The OpenAI-compatible HTTP front door: ``POST /v1/chat/completions``, ``GET /v1/models``.

A thin Starlette adapter over the same :class:`AskFlow` the gRPC servicer uses; it runs
in the gateway process, on the gRPC server's event loop, under uvicorn. Errors come back
in OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``) with the status
from the platform's error table; 429s carry ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from llmproxy.gateway.access import Authenticator
from llmproxy.gateway.ask import AskFlow
from llmproxy.gateway.keys import SCOPE_CHAT
from llmproxy.gateway.openai_format import (
    accepted_headers,
    chunk,
    completion,
    metadata,
    parse_body,
    reply_headers,
    to_ask_request,
    usage_dict,
)
from llmproxy.platform.errors import (
    InvalidArgumentError,
    LLMProxyError,
    RateLimitedError,
    http_status_for,
)
from llmproxy.platform.grpc_boundary import dependency_unavailable
from llmproxy.v1 import gateway_pb2

__all__ = ["MAX_BODY_BYTES", "build_app"]

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024


class JSONResponse(StarletteJSONResponse):
    """JSON encoded by orjson (several times faster than the standard library's)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: LLMProxyError) -> JSONResponse:
    """OpenAI's error shape for a domain error."""
    status = int(http_status_for(exc))
    headers = {}
    if isinstance(exc, RateLimitedError) and exc.retry_after_seconds is not None:
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_seconds)))
    body = {
        "error": {
            "message": exc.message,
            "type": exc.code,
            "param": getattr(exc, "field", None),
            "code": exc.code,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _unavailable_or_raise(exc: Exception) -> Response:
    """A lost database connection is 503 with ``Retry-After`` (retryable); else re-raise."""
    unavailable = dependency_unavailable(exc)
    if unavailable is None:
        raise exc
    log.warning("a dependency is unreachable", error=unavailable.message)
    response = error_response(unavailable)
    response.headers["retry-after"] = "2"
    return response


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data.encode() if isinstance(data, str) else orjson.dumps(data)
    return b"data: " + payload + b"\n\n"


def build_app(flow: AskFlow, auth: Authenticator) -> Starlette:
    """The Starlette application serving the OpenAI-compatible routes."""

    async def chat_completions(request: Request) -> Response:
        try:
            caller = await auth.authenticate(request.headers.get("authorization"))
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise InvalidArgumentError(
                    f"the request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}",
                    field="body",
                )
            body = parse_body(raw)
            ask = to_ask_request(body, request.headers)
            if body.stream:
                include_usage = bool(body.stream_options and body.stream_options.include_usage)
                return await _stream(flow.ask_stream(ask, caller), include_usage)
            reply = await flow.ask(ask, caller)
        except LLMProxyError as exc:
            return error_response(exc)
        except Exception as exc:
            return _unavailable_or_raise(exc)
        return JSONResponse(completion(reply, int(time.time())), headers=reply_headers(reply))

    async def models(request: Request) -> Response:
        try:
            caller = await auth.authenticate(request.headers.get("authorization"))
            caller.require(SCOPE_CHAT)
        except LLMProxyError as exc:
            return error_response(exc)
        data = [
            {"id": m.name, "object": "model", "created": 0, "owned_by": m.provider}
            for m in flow.catalog.available()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def internal_error(request: Request, exc: Exception) -> Response:
        if dependency_unavailable(exc) is not None:
            return _unavailable_or_raise(exc)
        log.exception("unhandled error in HTTP request", path=request.url.path)
        return JSONResponse(
            {
                "error": {
                    "message": "internal error (see the gateway log)",
                    "type": "internal_error",
                    "param": None,
                    "code": "internal_error",
                }
            },
            status_code=500,
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ],
        exception_handlers={Exception: internal_error},
    )


async def _stream(chunks: AsyncIterator[gateway_pb2.AskChunk], include_usage: bool) -> Response:
    """An SSE response; everything up to the first text is awaited first, so a request
    refused (auth, limits) or failing before any text gets a proper HTTP error status."""
    head: list[gateway_pb2.AskChunk] = []
    try:
        async for item in chunks:
            head.append(item)
            # a queued request's ETA goes out in the headers before it waits its turn
            if item.WhichOneof("kind") != "accepted" or item.accepted.eta.queued:
                break
    except LLMProxyError as exc:
        await _close(chunks)
        return error_response(exc)
    if not head:
        return error_response(LLMProxyError("the answer stream ended before it began"))
    accepted = head[0].accepted
    created = int(time.time())
    request_id, model = accepted.request_id, accepted.choice.model

    async def events() -> AsyncIterator[bytes]:
        try:
            yield _sse(
                chunk(request_id, model, created, delta={"role": "assistant", "content": ""})
            )
            pending = list(head[1:])
            while True:
                if pending:
                    item = pending.pop(0)
                else:
                    try:
                        item = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                kind = item.WhichOneof("kind")
                if kind == "delta":
                    yield _sse(chunk(request_id, model, created, delta={"content": item.delta}))
                elif kind == "final":
                    final = item.final
                    yield _sse(
                        chunk(
                            request_id,
                            final.choice.model,
                            created,
                            delta={},
                            finish_reason=final.finish_reason or "stop",
                            extra=metadata(final),
                        )
                    )
                    if include_usage:
                        yield _sse(
                            chunk(
                                request_id,
                                final.choice.model,
                                created,
                                usage=usage_dict(final.usage),
                            )
                        )
            yield _sse("[DONE]")
        except LLMProxyError as exc:
            # Headers are gone; OpenAI's SDK raises on an "error" event in the stream.
            yield _sse({"error": {"message": exc.message, "type": exc.code, "code": exc.code}})
        finally:
            await _close(chunks)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers=accepted_headers(accepted)
    )


async def _close(chunks: AsyncIterator[gateway_pb2.AskChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
