"""Connecting a service to its dependencies: the database and NATS at start (bounded
retries), and gRPC channels to other services that find a restarted peer again quickly."""

from __future__ import annotations

from contextlib import AsyncExitStack

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.db.engine import create_engine, session_factory, wait_for_database
from llmproxy.platform.settings import ServiceSettings
from llmproxy.platform.tracing import client_interceptors

__all__ = [
    "CHANNEL_OPTIONS",
    "SERVER_OPTIONS",
    "connect_bus",
    "connect_database",
    "open_database_and_bus",
    "service_channel",
]

#: Channels between services. gRPC's default reconnect backoff grows to 120 s (1 s first,
#: x1.6, with jitter): after a peer restarts, its callers kept failing for seconds. Here a
#: lost connection is retried after 100 ms, then at most every second; keepalive pings
#: find a peer that vanished without closing its sockets (a node or pod gone) in ~30 s.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)

#: Servers accept those keepalive pings (by default gRPC servers allow one per 5 minutes
#: without data and answer more with GOAWAY "too_many_pings").
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
)


def service_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel to another service (host:port) with :data:`CHANNEL_OPTIONS`."""
    # the interceptors carry the caller's trace context (W3C traceparent) to the peer
    return grpc.aio.insecure_channel(
        address, options=CHANNEL_OPTIONS, interceptors=client_interceptors()
    )


async def connect_bus(settings: ServiceSettings, *, name: str) -> JetStreamBus:
    """JetStream with the streams declared; UnavailableError after the retries."""
    return await JetStreamBus.connect(
        settings.nats_url,
        name=name,
        connect_timeout=2.0,
        retries=settings.connect_retries,
        backoff=settings.connect_backoff.total_seconds(),
    )


async def connect_database(settings: ServiceSettings) -> AsyncEngine:
    """An engine that has answered once; UnavailableError after the retries."""
    engine = create_engine(settings.database_url)
    try:
        await wait_for_database(
            engine,
            retries=settings.connect_retries,
            backoff=settings.connect_backoff.total_seconds(),
        )
    except BaseException:
        await engine.dispose()
        raise
    return engine


async def open_database_and_bus(
    settings: ServiceSettings, resources: AsyncExitStack, *, name: str
) -> tuple[async_sessionmaker[AsyncSession], JetStreamBus]:
    """Connect both; ``resources`` closes them (bus first) when the service stops."""
    engine = await connect_database(settings)
    resources.push_async_callback(engine.dispose)
    bus = await connect_bus(settings, name=f"{name}-{settings.instance_id}")
    resources.push_async_callback(bus.close)
    return session_factory(engine), bus
