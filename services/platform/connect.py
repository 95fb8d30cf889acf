"""Connecting a service to its dependencies at start, with bounded retries."""

from __future__ import annotations

from contextlib import AsyncExitStack

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.db.engine import create_engine, session_factory, wait_for_database
from llmproxy.platform.settings import ServiceSettings

__all__ = ["connect_bus", "connect_database", "open_database_and_bus"]


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
