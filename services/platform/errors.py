"""The one root exception of LLMProxy and the single table that maps errors to gRPC and HTTP.

Domain code raises these; adapters translate them once, at the boundary (gRPC status,
OpenAI-style HTTP error). Foreign exceptions (grpc, nats, sqlalchemy, httpx) never cross
a core boundary.
"""

from __future__ import annotations

from http import HTTPStatus

import grpc

__all__ = [
    "AlreadyExistsError",
    "BudgetExceededError",
    "ConfigurationError",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "LLMProxyError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitedError",
    "UnauthenticatedError",
    "UnavailableError",
    "grpc_status_for",
    "http_status_for",
]


class LLMProxyError(Exception):
    """Root of every error LLMProxy raises on purpose."""

    #: short machine-readable code (also the OpenAI error ``type``)
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(LLMProxyError):
    """A setting is missing or malformed; the message names it and the expected form."""

    code = "configuration_error"


class InvalidArgumentError(LLMProxyError):
    code = "invalid_request_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(LLMProxyError):
    code = "not_found_error"


class AlreadyExistsError(LLMProxyError):
    code = "already_exists"


class UnauthenticatedError(LLMProxyError):
    code = "authentication_error"


class PermissionDeniedError(LLMProxyError):
    code = "permission_error"


class BudgetExceededError(LLMProxyError):
    code = "insufficient_quota"


class RateLimitedError(LLMProxyError):
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class DeadlineExceededError(LLMProxyError):
    code = "timeout"


class UnavailableError(LLMProxyError):
    """A dependency (NATS, database, another service) cannot be reached."""

    code = "service_unavailable"


class ProviderError(LLMProxyError):
    """The model provider failed or answered with an error."""

    code = "provider_error"

    def __init__(self, message: str, *, provider: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable


_TABLE: dict[type[LLMProxyError], tuple[grpc.StatusCode, HTTPStatus]] = {
    InvalidArgumentError: (grpc.StatusCode.INVALID_ARGUMENT, HTTPStatus.BAD_REQUEST),
    ConfigurationError: (grpc.StatusCode.FAILED_PRECONDITION, HTTPStatus.INTERNAL_SERVER_ERROR),
    NotFoundError: (grpc.StatusCode.NOT_FOUND, HTTPStatus.NOT_FOUND),
    AlreadyExistsError: (grpc.StatusCode.ALREADY_EXISTS, HTTPStatus.CONFLICT),
    UnauthenticatedError: (grpc.StatusCode.UNAUTHENTICATED, HTTPStatus.UNAUTHORIZED),
    PermissionDeniedError: (grpc.StatusCode.PERMISSION_DENIED, HTTPStatus.FORBIDDEN),
    BudgetExceededError: (grpc.StatusCode.RESOURCE_EXHAUSTED, HTTPStatus.PAYMENT_REQUIRED),
    RateLimitedError: (grpc.StatusCode.RESOURCE_EXHAUSTED, HTTPStatus.TOO_MANY_REQUESTS),
    DeadlineExceededError: (grpc.StatusCode.DEADLINE_EXCEEDED, HTTPStatus.GATEWAY_TIMEOUT),
    UnavailableError: (grpc.StatusCode.UNAVAILABLE, HTTPStatus.SERVICE_UNAVAILABLE),
    ProviderError: (grpc.StatusCode.UNAVAILABLE, HTTPStatus.BAD_GATEWAY),
}


def _lookup(error: LLMProxyError) -> tuple[grpc.StatusCode, HTTPStatus]:
    for cls in type(error).__mro__:
        if cls in _TABLE:
            return _TABLE[cls]
    return grpc.StatusCode.INTERNAL, HTTPStatus.INTERNAL_SERVER_ERROR


def grpc_status_for(error: LLMProxyError) -> grpc.StatusCode:
    """The gRPC status code a caller sees for ``error``."""
    return _lookup(error)[0]


def http_status_for(error: LLMProxyError) -> HTTPStatus:
    """The HTTP status an OpenAI-compatible caller sees for ``error``."""
    return _lookup(error)[1]
