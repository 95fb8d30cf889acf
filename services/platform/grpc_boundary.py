"""The gRPC boundary of every service: error mapping and request metrics in one interceptor.

Servicers raise :class:`LLMProxyError` subclasses; callers see the status from
:func:`grpc_status_for` with the error's message. A lost connection to the database
(:func:`dependency_unavailable`) becomes UNAVAILABLE — retryable — with a message that says
so. Anything else becomes INTERNAL with a generic message (the details go to the log, not
to the caller).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import exc as sa_exc

from llmproxy.platform.errors import LLMProxyError, UnavailableError, grpc_status_for

__all__ = [
    "RPCS",
    "RPC_LATENCY",
    "BoundaryInterceptor",
    "dependency_unavailable",
    "error_from_rpc",
]

log = structlog.get_logger(__name__)

RPCS = Counter("llmproxy_grpc_requests_total", "gRPC requests handled", ["method", "code"])
RPC_LATENCY = Histogram(
    "llmproxy_grpc_request_seconds",
    "gRPC request latency",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the database connection is gone or cannot be made"."""
    found: list[type[BaseException]] = [
        sa_exc.OperationalError,  # the driver lost or could not open the connection
        sa_exc.InterfaceError,  # e.g. "connection is closed"
        sa_exc.DisconnectionError,
        sa_exc.TimeoutError,  # no pooled connection became free in time
        ConnectionError,  # refused, reset, aborted (OSError subclasses)
        TimeoutError,  # connect or pool checkout timed out (asyncio's too)
    ]
    try:
        import asyncpg.exceptions as pg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return tuple(found)
    found += [
        pg.PostgresConnectionError,  # ConnectionDoesNotExist, ConnectionFailure, rejections
        pg.CannotConnectNowError,  # the server is starting or shutting down
        pg.AdminShutdownError,
        pg.CrashShutdownError,
        pg.InterfaceError,  # "connection is closed", "another operation is in progress"
    ]
    return tuple(found)


_CONNECTION_ERRORS = _connection_errors()


def dependency_unavailable(exc: BaseException) -> UnavailableError | None:
    """An UnavailableError (503 / UNAVAILABLE, retryable) if ``exc`` — or what caused it —
    is a lost or refused database connection; None for anything else.

    The message names the kind of failure, never the error's text (which can hold SQL,
    addresses or credentials).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return _unavailable(current)
        if isinstance(current, _CONNECTION_ERRORS):
            return _unavailable(current)
        orig = getattr(current, "orig", None)  # sqlalchemy keeps the driver's error here
        if isinstance(orig, BaseException) and id(orig) not in seen:
            current = orig
            continue
        current = current.__cause__ or current.__context__
    return None


def _unavailable(cause: BaseException) -> UnavailableError:
    return UnavailableError(
        f"the database is unreachable ({type(cause).__name__}); this is temporary: "
        "retry in a few seconds"
    )


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: BaseException) -> None:
    if isinstance(exc, LLMProxyError):
        code = grpc_status_for(exc)
        RPCS.labels(method, code.name).inc()
        await context.abort(code, exc.message)
    unavailable = dependency_unavailable(exc)
    if unavailable is not None:
        RPCS.labels(method, grpc.StatusCode.UNAVAILABLE.name).inc()
        log.warning("a dependency is unreachable", method=method, error=unavailable.message)
        await context.abort(grpc.StatusCode.UNAVAILABLE, unavailable.message)
    RPCS.labels(method, grpc.StatusCode.INTERNAL.name).inc()
    log.exception("unhandled error in rpc", method=method)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error (see the service log)")


def _wrap_unary(method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            reply = await behavior(request, context)
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as exc:
            await _abort(context, method, exc)
            raise
        finally:
            RPC_LATENCY.labels(method).observe(time.perf_counter() - started)
        RPCS.labels(method, (context.code() or grpc.StatusCode.OK).name).inc()
        return reply

    return handler


def _wrap_stream(method: str, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = time.perf_counter()
        try:
            async for item in behavior(request, context):
                yield item
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as exc:
            await _abort(context, method, exc)
            raise
        finally:
            RPC_LATENCY.labels(method).observe(time.perf_counter() - started)
        RPCS.labels(method, (context.code() or grpc.StatusCode.OK).name).inc()

    return handler


class BoundaryInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain errors to statuses and counts every RPC (unary and server-streaming)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        # grpc's own health and reflection services write to the context instead of
        # yielding; they need neither error mapping nor our metrics.
        if handler is None or method.startswith("/grpc."):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


_FROM_STATUS: dict[grpc.StatusCode, Callable[[str], LLMProxyError]] = {}


def error_from_rpc(exc: grpc.aio.AioRpcError, *, peer: str) -> LLMProxyError:
    """Turn another service's gRPC failure back into our error, keeping its message."""
    from llmproxy.platform import errors  # local: the table below is built once, lazily

    if not _FROM_STATUS:
        _FROM_STATUS.update(
            {
                grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgumentError,
                grpc.StatusCode.NOT_FOUND: errors.NotFoundError,
                grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExistsError,
                grpc.StatusCode.UNAUTHENTICATED: errors.UnauthenticatedError,
                grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDeniedError,
                grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceededError,
                grpc.StatusCode.RESOURCE_EXHAUSTED: errors.RateLimitedError,
            }
        )
    code = exc.code()
    details = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        return errors.UnavailableError(f"{peer} is unavailable: {details}")
    factory = _FROM_STATUS.get(code)
    if factory is None:
        return LLMProxyError(f"{peer} failed: {details}")
    return factory(details)
