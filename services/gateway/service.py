"""Wiring of the gateway service: settings, dependencies, the gRPC and HTTP front doors."""

from __future__ import annotations

import asyncio
import contextlib
import os
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import ClassVar

import grpc
import structlog
from pydantic import Field, model_validator
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.cache.client import GrpcCacheClient
from llmproxy.gateway.access import Authenticator, Caller
from llmproxy.gateway.ask import AskFlow, RetryPolicy
from llmproxy.gateway.catalog import Catalog, load_catalog
from llmproxy.gateway.context_client import GrpcContextClient
from llmproxy.gateway.http_api import build_app
from llmproxy.gateway.providers.anthropic import AnthropicProvider
from llmproxy.gateway.providers.openai_compat import OpenAICompatibleProvider
from llmproxy.gateway.providers.port import Provider
from llmproxy.gateway.queueing import RequestQueues
from llmproxy.gateway.reservations import LimitGuard
from llmproxy.gateway.servicer import GatewayServicer
from llmproxy.gateway.store import SqlKeyDirectory, SqlLimitStore, SqlUsageLedger
from llmproxy.optimizer.router.live import LiveRouter
from llmproxy.platform.bus.port import Delivery, EventBus
from llmproxy.platform.bus.subjects import POLICY_UPDATED, PROFILE_UPDATED
from llmproxy.platform.connect import connect_bus, connect_database, service_channel
from llmproxy.platform.db.engine import redacted_url, session_factory
from llmproxy.platform.embeddings import Embedder
from llmproxy.platform.errors import ConfigurationError
from llmproxy.platform.http_server import HttpServer
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.profiler.live import LiveProfiles
from llmproxy.v1 import gateway_pb2, gateway_pb2_grpc

__all__ = ["App", "Settings"]

log = structlog.get_logger(__name__)

LOCAL_MODEL = "smollm2-135m-instruct"


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"

    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    http_host: str = Field("127.0.0.1", description="address the HTTP API binds")
    http_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="OpenAI-compatible HTTP port (e.g. 8080); unset: off, 0: a free one",
    )
    context_addr: str = Field(
        "127.0.0.1:50052", pattern=r"^[^\s:]+:\d+$", description="context service host:port"
    )
    cache_addr: str | None = Field(
        None,
        pattern=r"^[^\s:]+:\d+$",
        description="cache service host:port; unset: no response cache",
    )
    cache_timeout: Duration = Field(
        timedelta(milliseconds=500),
        description="longest wait for a cache lookup (a slow cache is a miss)",
    )
    catalog_file: str | None = Field(None, description="path of a catalog JSON file")
    local_model_url: str = Field(
        "http://127.0.0.1:8081/v1",
        pattern=r"^https?://\S+$",
        description="base URL of the local OpenAI-compatible model server",
    )
    provider_timeout: Duration = Field(
        timedelta(seconds=60), description="longest wait for a provider's answer"
    )
    provider_retries: int = Field(
        2, ge=0, le=10, description="retries of a model on retryable errors before falling back"
    )
    provider_backoff: Duration = Field(
        timedelta(milliseconds=200), description="first wait before a retry; doubles, capped at 2s"
    )
    default_output_cap: int = Field(
        1024,
        ge=1,
        description="max_tokens sent when the caller sets none and a money or token limit applies",
    )
    allow_anonymous: bool = Field(
        False,
        description="serve calls without an API key as default_tenant/default_app (development)",
    )
    default_tenant: str = Field("local", min_length=1, description="tenant of anonymous calls")
    default_app: str = Field("default", min_length=1, description="app of anonymous calls")
    auth_cache_ttl: Duration = Field(
        timedelta(seconds=5), description="how long a verified key's row is reused (revocation lag)"
    )
    limits_cache_ttl: Duration = Field(
        timedelta(seconds=5), description="how long a tenant's limits are reused (new-limit lag)"
    )
    reservation_ttl: Duration = Field(
        timedelta(minutes=15),
        description="after this, a reservation its gateway never settled (it died) is released",
    )
    reservation_sweep_interval: Duration = Field(
        timedelta(seconds=30), description="how often expired reservations are looked for"
    )
    scheduler_addr: str | None = Field(
        None,
        pattern=r"^[^\s:]+:\d+$",
        description="scheduler host:port; requests to capacity-limited models (capacity_slots "
        "in the catalog) then wait their turn in its queues; unset: no queues",
    )
    queue_replica: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="this replica's stable name in the scheduler (its queue executors are "
        "gateway-<name>-<model>); unset: <host>-<grpc_port>",
    )
    queue_replicas: int = Field(
        1, ge=1, le=1000, description="gateway replicas sharing each limited model's slots"
    )
    queue_max_wait: Duration = Field(
        timedelta(minutes=5), description="longest wait for a slot before a request fails"
    )
    queue_tenant_weights: dict[str, float] = Field(
        default_factory=dict,
        description='JSON map tenant -> weight of its share of a limited model, e.g. '
        '{"acme": 2}; other tenants weigh 1',
    )

    @model_validator(mode="after")
    def _queues_are_sane(self) -> Settings:
        bad = {t: w for t, w in self.queue_tenant_weights.items() if not 0 < w <= 1e6}
        if bad:
            raise ValueError(f"queue_tenant_weights must be > 0 and <= 1e6, got {bad}")
        longest = self.provider_timeout * (self.provider_retries + 1) + self.queue_max_wait
        if self.scheduler_addr and self.reservation_ttl <= longest:
            raise ValueError(
                f"reservation_ttl ({self.reservation_ttl}) must be longer than a queued request "
                f"can take: queue_max_wait + provider_timeout x (provider_retries + 1) = {longest}"
            )
        return self

    @model_validator(mode="after")
    def _reservations_outlive_requests(self) -> Settings:
        attempts = self.provider_retries + 1
        if self.reservation_ttl <= self.provider_timeout * attempts:
            raise ValueError(
                f"reservation_ttl ({self.reservation_ttl}) must be longer than a request can "
                f"take: provider_timeout x (provider_retries + 1) = "
                f"{self.provider_timeout * attempts}"
            )
        return self


def build_providers(catalog: Catalog, environ: dict[str, str]) -> dict[str, Provider]:
    """One adapter per callable model: Anthropic's own API, else OpenAI-compatible."""
    providers: dict[str, Provider] = {}
    for model in catalog.available():
        key = environ.get(model.api_key_env, "") if model.api_key_env else ""
        if model.provider == "anthropic":
            providers[model.name] = AnthropicProvider(
                model.name, base_url=model.base_url or "https://api.anthropic.com/v1", api_key=key
            )
        else:
            # retries are the request path's (with backoff and fallback), not the SDK's
            providers[model.name] = OpenAICompatibleProvider(
                model.name, base_url=model.base_url, api_key=key, max_retries=0
            )
    return providers


class App:
    name = "gateway"
    grpc_services = (gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()
        self.http: HttpServer | None = None

    async def start(self, server: grpc.aio.Server) -> None:
        settings = self._settings
        opened = self._resources
        catalog = load_catalog(
            settings.catalog_file,
            environ=os.environ,
            overrides={LOCAL_MODEL: {"base_url": settings.local_model_url}},
        )
        providers = build_providers(catalog, dict(os.environ))
        for provider in providers.values():
            opened.push_async_callback(provider.close)
        # NATS first: a gateway that cannot publish the ledger must not start at all
        bus = await connect_bus(settings, name=f"gateway-{settings.instance_id}")
        opened.push_async_callback(bus.close)
        engine = await connect_database(settings)
        opened.push_async_callback(engine.dispose)
        await _require_schema(engine, settings.database_url)
        sessions = session_factory(engine)
        router, profiles = await _model_selection(bus, sessions, opened)
        channel = service_channel(settings.context_addr)
        opened.push_async_callback(channel.close)
        cache = None
        if settings.cache_addr:
            cache_channel = service_channel(settings.cache_addr)
            opened.push_async_callback(cache_channel.close)
            cache = GrpcCacheClient(cache_channel, timeout_s=settings.cache_timeout.total_seconds())
        guard = LimitGuard(
            SqlLimitStore(sessions),
            rules_ttl_s=settings.limits_cache_ttl.total_seconds(),
            reservation_ttl_s=settings.reservation_ttl.total_seconds(),
        )
        sweeper = asyncio.create_task(
            _sweep_forever(guard, settings.reservation_sweep_interval.total_seconds())
        )
        opened.push_async_callback(_cancel, sweeper)
        queues = await _request_queues(settings, catalog)
        if queues is not None:
            # closed after the requests in flight are done (LIFO)
            opened.push_async_callback(queues.close)
        flow = AskFlow(
            catalog=catalog,
            providers=providers,
            context=GrpcContextClient(channel),
            cache=cache,
            bus=bus,
            provider_timeout_s=settings.provider_timeout.total_seconds(),
            limits=guard,
            retry=RetryPolicy(
                retries=settings.provider_retries,
                base_delay_s=settings.provider_backoff.total_seconds(),
            ),
            default_output_cap=settings.default_output_cap,
            router=router,
            profiles=profiles,
            queues=queues,
        )
        # Last in, first out: settlements and events finish before the bus and DB close.
        opened.push_async_callback(flow.drain)
        anonymous = (
            Caller(settings.default_tenant, settings.default_app)
            if settings.allow_anonymous
            else None
        )
        auth = Authenticator(
            SqlKeyDirectory(sessions),
            cache_ttl_s=settings.auth_cache_ttl.total_seconds(),
            anonymous=anonymous,
        )
        gateway_pb2_grpc.add_GatewayServicer_to_server(
            GatewayServicer(flow, auth, bus=bus, ledger=SqlUsageLedger(sessions)), server
        )
        if settings.http_port is not None:
            self.http = HttpServer(
                build_app(flow, auth),
                host=settings.http_host,
                port=settings.http_port,
                drain_timeout_s=settings.drain_timeout.total_seconds(),
            )
            await self.http.start()
            # stops before flow.drain (LIFO), so its in-flight requests settle first
            opened.push_async_callback(self.http.stop)

    async def stop(self) -> None:
        await self._resources.aclose()


async def _model_selection(
    bus: EventBus, sessions: async_sessionmaker[AsyncSession], opened: AsyncExitStack
) -> tuple[LiveRouter, LiveProfiles]:
    """The active router and the model profiles, kept current by broadcasts (no restart).

    Subscribed before reading the database, so an activation in between is not missed.
    """
    router, profiles = LiveRouter(sessions, Embedder()), LiveProfiles()
    for subject, handler, consumer in (
        (POLICY_UPDATED, router.on_policy_updated, "gateway-router"),
        (PROFILE_UPDATED, profiles.on_profile_updated, "gateway-profiles"),
    ):
        subscription = await bus.subscribe(
            subject, handler, consumer=consumer, delivery=Delivery.BROADCAST
        )
        opened.push_async_callback(subscription.stop)
    await router.load()
    await profiles.load(sessions)
    return router, profiles


async def _request_queues(settings: Settings, catalog: Catalog) -> RequestQueues | None:
    """The queues of the catalog's capacity-limited models, when a scheduler is configured."""
    limited = [m.name for m in catalog.available() if m.capacity_slots > 0]
    if not limited:
        return None
    if not settings.scheduler_addr:
        log.warning(
            "capacity-limited models are served without queues (set LLMPROXY_SCHEDULER_ADDR)",
            models=limited,
        )
        return None
    replica = settings.queue_replica or f"{os.uname().nodename}-{settings.grpc_port}"
    queues = RequestQueues(
        settings.scheduler_addr,
        catalog,
        replica=replica,
        replicas=settings.queue_replicas,
        tenant_weights=settings.queue_tenant_weights,
        max_wait_s=settings.queue_max_wait.total_seconds(),
    )
    await queues.start()
    log.info("request queues starting", models=limited, replica=replica)
    return queues


async def _sweep_forever(guard: LimitGuard, interval_s: float) -> None:
    """Release reservations whose gateway died; every replica sweeps, each row once."""
    while True:
        try:
            released = await guard.sweep()
            if released:
                log.warning("released expired limit reservations", count=released)
        except Exception:  # the database may be briefly away; the next round retries
            log.exception("sweeping expired reservations failed")
        await asyncio.sleep(interval_s)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _require_schema(engine, url: str) -> None:  # type: ignore[no-untyped-def]
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1 FROM api_keys WHERE 1 = 0"))
    except SQLAlchemyError:
        raise ConfigurationError(
            f"DATABASE_URL: the database at {redacted_url(url)} has no gateway tables; "
            "migrate it first: llmproxy db upgrade"
        ) from None
