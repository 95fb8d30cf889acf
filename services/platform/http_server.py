"""An HTTP application served by uvicorn on a service's own event loop (beside gRPC).

The gateway's OpenAI-compatible API and the WhatsApp webhook both run this way: the
service runtime owns the process's signals, so uvicorn's own handlers are off, and
:meth:`HttpServer.stop` lets in-flight requests finish within the drain timeout.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import contextmanager

import structlog
import uvicorn
from starlette.applications import Starlette

from llmproxy.platform.tracing import TracingAsgiMiddleware

__all__ = ["HttpServer"]

log = structlog.get_logger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the service runtime owns SIGTERM."""

    @contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def, override]
        yield


class HttpServer:
    """uvicorn serving ``app`` as a task on the running loop; :meth:`stop` drains it."""

    def __init__(
        self,
        app: Starlette,
        *,
        host: str,
        port: int,
        drain_timeout_s: float,
        name: str = "http",
    ) -> None:
        self.name = name
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this on Linux. Without it a response written in two
        # parts (headers, body) waits ~40 ms for the client's delayed ACK (Nagle).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            TracingAsgiMiddleware(app, server=name),  # a trace and metrics per request
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=max(1, int(drain_timeout_s)),
            backlog=2048,
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                return
            await asyncio.sleep(0.01)
        log.info(f"{self.name} listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the drain timeout)."""
        if self._task is None:
            self._socket.close()
            return
        self._server.should_exit = True
        await self._task
        self._socket.close()
