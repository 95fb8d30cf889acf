"""Requests that are not valid protobuf get INVALID_ARGUMENT, not UNKNOWN.

grpcio answers a request its deserializer cannot parse with UNKNOWN and the Python
exception's repr ("Unexpected <class 'DecodeError'>..."): neither a status a client can
act on nor a message meant for it. :class:`DecodeGuardInterceptor` lets the deserializer
hand back a marker instead, and the handler turns the marker into an
:class:`InvalidArgumentError` naming the expected message type, which the boundary
interceptor (installed outside this one) maps to INVALID_ARGUMENT like any bad input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from llmproxy.platform.errors import InvalidArgumentError

__all__ = ["DecodeGuardInterceptor"]


class _Undecodable:
    """What the guarded deserializer returns for bytes that are not the request type."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgumentError) -> None:
        self.error = error


def _type_name(deserializer: Callable[[bytes], Any], method: str) -> str:
    message_class = getattr(deserializer, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "")) or f"the request of {method}"


def _guarded(deserializer: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    expected = _type_name(deserializer, method)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, or anything a custom deserializer raises
            return _Undecodable(
                InvalidArgumentError(
                    f"the request body is not a valid {expected} message "
                    f"({len(data)} bytes that do not parse as protobuf)",
                    field="request",
                )
            )

    return deserialize


def _unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            raise request.error
        return await behavior(request, context)

    return handler


def _stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, _Undecodable):
            raise request.error
        async for item in behavior(request, context):
            yield item

    return handler


class DecodeGuardInterceptor(grpc.aio.ServerInterceptor):
    """Install inside the boundary interceptor: undecodable requests become bad input."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.request_deserializer is None or method.startswith("/grpc."):
            return handler
        deserializer = _guarded(handler.request_deserializer, method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _stream(handler.unary_stream),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
