"""A lost database connection reaches callers as 503 / UNAVAILABLE (retryable) with a clear
message — never 500 / INTERNAL — through the gRPC boundary and the HTTP API alike."""

from __future__ import annotations

from typing import Any

import asyncpg.exceptions as pg
import grpc
import pytest
from sqlalchemy import exc as sa_exc
from starlette.testclient import TestClient

from llmproxy.gateway.http_api import build_app
from llmproxy.platform.errors import UnavailableError
from llmproxy.platform.grpc_boundary import BoundaryInterceptor, dependency_unavailable

SECRET = "postgresql://llmproxy:hunter2@db:5432/llmproxy"


def _operational(cause: BaseException) -> sa_exc.OperationalError:
    return sa_exc.OperationalError(f"SELECT 1 -- {SECRET}", {}, cause)


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except BaseException as caught:
        return caught


LOST = [
    pytest.param(_operational(ConnectionRefusedError(111, "refused")), id="operational"),
    pytest.param(sa_exc.InterfaceError("x", {}, Exception("connection is closed")), id="interface"),
    pytest.param(
        sa_exc.DBAPIError("x", {}, Exception("boom"), connection_invalidated=True),
        id="invalidated",
    ),
    pytest.param(sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), id="pool"),
    pytest.param(ConnectionRefusedError(111, "Connect call failed"), id="refused"),
    pytest.param(TimeoutError(), id="timeout"),
    pytest.param(pg.ConnectionDoesNotExistError("connection was closed"), id="does-not-exist"),
    pytest.param(pg.CannotConnectNowError("the database system is starting up"), id="starting"),
    pytest.param(_chained(RuntimeError("wrapped"), ConnectionResetError()), id="chained"),
]


@pytest.mark.parametrize("error", LOST)
def test_lost_database_connections_become_a_retryable_unavailable_error(
    error: BaseException,
) -> None:
    mapped = dependency_unavailable(error)
    assert isinstance(mapped, UnavailableError)
    assert "database is unreachable" in mapped.message and "retry" in mapped.message
    assert "hunter2" not in mapped.message and "SELECT" not in mapped.message


@pytest.mark.parametrize(
    "error",
    [ValueError("bad"), KeyError("k"), sa_exc.IntegrityError("x", {}, Exception("dup"))],
)
def test_other_errors_are_not_called_an_outage(error: BaseException) -> None:
    assert dependency_unavailable(error) is None


async def test_grpc_boundary_answers_unavailable_for_a_lost_database() -> None:
    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if request == b"db":
            raise _operational(ConnectionRefusedError(111, "Connect call failed"))
        raise ValueError("a bug")

    handler = grpc.method_handlers_generic_handler(
        "test.Svc", {"Call": grpc.unary_unary_rpc_method_handler(call)}
    )
    server = grpc.aio.server(interceptors=[BoundaryInterceptor()])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            method = channel.unary_unary("/test.Svc/Call")
            with pytest.raises(grpc.aio.AioRpcError) as lost:
                await method(b"db", timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as bug:
                await method(b"bug", timeout=5)
    finally:
        await server.stop(None)
    assert lost.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "database is unreachable" in (lost.value.details() or "")
    assert "hunter2" not in (lost.value.details() or "")
    assert bug.value.code() == grpc.StatusCode.INTERNAL


class _Auth:
    async def authenticate(self, header: str | None) -> Any:
        return object()


class _Flow:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def ask(self, request: Any, caller: Any) -> Any:
        raise self.error


def test_http_api_answers_503_with_retry_after_for_a_lost_database() -> None:
    lost = _operational(ConnectionRefusedError(111, "Connect call failed"))
    app = build_app(_Flow(lost), _Auth())  # type: ignore[arg-type]
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    error = response.json()["error"]
    assert error["type"] == "service_unavailable" and "retry" in error["message"]
    assert "hunter2" not in response.text

    app = build_app(_Flow(ValueError("a bug")), _Auth())  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 500
