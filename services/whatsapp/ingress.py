"""The webhook on an event loop of its own, in a thread, with its own NATS connection.

Meta wants the POST answered within milliseconds. On the service's loop, each POST queued
behind whatever else was ready — the intake consumers' inbox writes, sixteen workers'
gateway calls and Graph sends, the bus's fetch loops — so under a backlog the client's p99
was 70-85 ms while the handler itself needs about 0.1 ms of CPU plus JetStream's PubAck.
Here the webhook's loop has nothing else to run: a POST waits at most for the GIL (handed
over every ``sys.getswitchinterval()``, 5 ms) rather than for a whole loop iteration of
other work. The ack still waits for exactly one thing: JetStream storing the message.

Off by default (``LLMPROXY_WEBHOOK_OWN_THREAD``): on the overloaded 2-core development
machine (load average 12-16) two A/B runs of ``bench/whatsapp/load.py`` disagreed (client
p99 65 vs 84 ms for the thread, then 134 vs 95 ms against it), and the webhook's own
histogram grew in the thread (it then waits for the GIL, held by a main thread the OS has
preempted). To be measured on a quiet machine before it is made the default.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable

import structlog
from starlette.applications import Starlette

from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.http_server import HttpServer

__all__ = ["WebhookThread"]

log = structlog.get_logger(__name__)


class WebhookThread:
    """Serve ``make_app(bus)`` in a thread; ``connect`` opens that thread's own bus.

    ``own_thread=False`` serves it on the calling loop with ``shared_bus`` instead (the
    former design; kept to compare the two under load).
    """

    def __init__(
        self,
        make_app: Callable[[EventBus], Starlette],
        connect: Callable[[], Awaitable[EventBus]],
        *,
        host: str,
        port: int,
        drain_timeout_s: float,
        own_thread: bool = True,
        shared_bus: EventBus | None = None,
    ) -> None:
        if not own_thread and shared_bus is None:
            raise ValueError("own_thread=False needs the shared_bus to publish to")
        self._own_thread = own_thread
        self._shared_bus = shared_bus
        self._inline: HttpServer | None = None
        self._make_app = make_app
        self._connect = connect
        self._host = host
        self._requested_port = port
        self._drain = drain_timeout_s
        self._ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    async def start(self) -> None:
        """Start the thread; return once the webhook listens (raise what stopped it)."""
        if not self._own_thread:
            assert self._shared_bus is not None
            self._inline = HttpServer(
                self._make_app(self._shared_bus),
                host=self._host,
                port=self._requested_port,
                drain_timeout_s=self._drain,
                name="webhook",
            )
            await self._inline.start()
            self.port = self._inline.port
            return
        self._thread = threading.Thread(target=self._main, name="whatsapp-webhook", daemon=True)
        self._thread.start()
        self.port = await asyncio.wrap_future(self._ready)

    async def stop(self) -> None:
        """Stop accepting, let in-flight POSTs finish (drain timeout), close the bus."""
        if self._inline is not None:
            await self._inline.stop()
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to start(), or logged
            if not self._ready.done():
                self._ready.set_exception(exc)
            else:
                log.error("the webhook thread failed", error=repr(exc))

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        bus = await self._connect()
        try:
            server = HttpServer(
                self._make_app(bus),
                host=self._host,
                port=self._requested_port,
                drain_timeout_s=self._drain,
                name="webhook",
            )
            await server.start()
            try:
                self._ready.set_result(server.port)
                await self._stop.wait()
            finally:
                await server.stop()
        finally:
            await bus.close()
