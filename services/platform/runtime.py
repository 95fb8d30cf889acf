"""The service runtime: how every LLMProxy service starts, serves and stops.

``run_service(app, settings)`` is the whole life of a process:

1. configure structured logging;
2. ``await app.start(server)``: the service connects its dependencies (with bounded
   retries), registers its servicers on the gRPC server and starts its consumers;
3. serve gRPC (with the standard health service, reflection, and the boundary
   interceptor) and, when configured, Prometheus ``/metrics``;
4. on SIGTERM or SIGINT: report NOT_SERVING, stop accepting calls, let in-flight calls
   finish within ``drain_timeout``, then ``await app.stop()`` and return 0.

A :class:`ConfigurationError` or :class:`UnavailableError` at start returns exit code 2
or 3 with one clear line on stderr.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Protocol

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from llmproxy.platform.connect import SERVER_OPTIONS
from llmproxy.platform.errors import ConfigurationError, UnavailableError
from llmproxy.platform.grpc_boundary import BoundaryInterceptor
from llmproxy.platform.grpc_decoding import DecodeGuardInterceptor
from llmproxy.platform.logs import configure_logging
from llmproxy.platform.settings import ServiceSettings
from llmproxy.platform.tracing import TracingServerInterceptor, configure_tracing

__all__ = ["ServiceApp", "run_service", "serve_forever", "server_interceptors"]

log = structlog.get_logger(__name__)

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


class ServiceApp(Protocol):
    """What a service's wiring module provides to the runtime."""

    #: short name, e.g. "gateway"
    name: str
    #: full gRPC service names it serves (for health and reflection)
    grpc_services: Sequence[str]

    async def start(self, server: grpc.aio.Server) -> None:
        """Connect dependencies, add servicers to ``server``, start background work."""
        ...

    async def stop(self) -> None:
        """Stop background work and close dependencies (called after gRPC has drained)."""
        ...


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Every service's gRPC interceptors, outermost first: the trace span sees the status
    the boundary settled on; the decode guard hands undecodable requests to the boundary
    as bad input (INVALID_ARGUMENT)."""
    return [TracingServerInterceptor(), BoundaryInterceptor(), DecodeGuardInterceptor()]


async def serve_forever(app: ServiceApp, settings: ServiceSettings, stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set, then shut down gracefully."""
    server = grpc.aio.server(interceptors=server_interceptors(), options=SERVER_OPTIONS)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    await app.start(server)
    names = [*app.grpc_services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    for name in ("", *app.grpc_services):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)

    metrics_http = None
    if settings.metrics_port is not None:
        metrics_http, _ = start_http_server(settings.metrics_port, addr=settings.grpc_host)
        log.info("metrics listening", port=metrics_http.server_port, path="/metrics")
    log.info("serving", service=app.name, host=settings.grpc_host, port=port)

    await stop.wait()
    grace = settings.drain_timeout.total_seconds()
    log.info("shutting down", drain_timeout_s=grace)
    await health.enter_graceful_shutdown()
    # Stops accepting new calls at once; in-flight calls get `grace` seconds to finish.
    await server.stop(grace)
    await app.stop()
    if metrics_http is not None:
        metrics_http.shutdown()
    log.info("stopped", service=app.name)


def run_service(app: ServiceApp, settings: ServiceSettings) -> int:
    """Run ``app`` in this process until SIGTERM/SIGINT; return the process exit code."""
    configure_logging(
        service=app.name,
        instance=settings.instance_id,
        level=settings.log_level,
        fmt=settings.log_format,
    )
    tracing = configure_tracing(
        service=app.name, instance=settings.instance_id, endpoint=settings.otel_endpoint
    )

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await serve_forever(app, settings, stop)
        except ConfigurationError as exc:
            print(f"llmproxy {app.name}: {exc.message}", file=sys.stderr)
            await _stop_quietly(app)
            return EXIT_CONFIG
        except UnavailableError as exc:
            print(f"llmproxy {app.name}: {exc.message}", file=sys.stderr)
            await _stop_quietly(app)
            return EXIT_UNAVAILABLE
        return 0

    try:
        return asyncio.run(main())
    finally:
        if tracing is not None:
            tracing.shutdown()  # exports the spans still batched


async def _stop_quietly(app: ServiceApp) -> None:
    try:
        await app.stop()
    except Exception:  # already failing to start: the first error is the one to report
        log.debug("stop after failed start raised", exc_info=True)
