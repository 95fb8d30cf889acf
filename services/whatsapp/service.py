"""Wiring of the whatsapp service: settings, the webhook, the inbox worker, the operator API.

With ``LLMPROXY_WEBHOOK_PORT`` unset the process serves the operator gRPC API only (no
webhook), so ``llmproxy up`` runs without WhatsApp credentials; with it set, the app secret,
verify token, access token and phone number id are required.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import grpc
import structlog
from pydantic import Field, SecretStr
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette

from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.connect import connect_bus, connect_database, service_channel
from llmproxy.platform.db.engine import redacted_url, session_factory
from llmproxy.platform.errors import ConfigurationError
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.v1 import whatsapp_pb2, whatsapp_pb2_grpc
from llmproxy.whatsapp.core import ChannelPolicy
from llmproxy.whatsapp.graph import GraphClient, GraphConfig
from llmproxy.whatsapp.inbox import SqlInbox
from llmproxy.whatsapp.ingress import WebhookThread
from llmproxy.whatsapp.intake import InboxIntake, publish_notification
from llmproxy.whatsapp.servicer import WhatsAppServicer
from llmproxy.whatsapp.upstream import GrpcUpstream
from llmproxy.whatsapp.webhook import build_webhook_app
from llmproxy.whatsapp.worker import Delivery, InboxWorker, MessageHandler

__all__ = ["App", "Settings"]

log = structlog.get_logger(__name__)

_ADDR = r"^[^\s:]+:\d+$"


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "whatsapp"

    grpc_port: int = Field(50057, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    # -- the webhook ------------------------------------------------------------------------
    webhook_host: str = Field("127.0.0.1", description="address the webhook binds")
    webhook_port: int | None = Field(
        None, ge=0, le=65535, description="webhook HTTP port (e.g. 8090); unset: off, 0: a free one"
    )
    webhook_path: str = Field("/webhook", pattern=r"^/\S*$", description="the webhook's URL path")
    webhook_max_body: int = Field(
        1_000_000, ge=1024, description="largest webhook body in bytes (larger: 413, unread)"
    )
    webhook_own_thread: bool = Field(
        False,
        description="serve the webhook on an event loop (and NATS connection) of its own in "
        "a thread, so a POST never waits behind the workers' loop work (but for the GIL); "
        "off until measured better on a quiet machine: bench/whatsapp/load.py --webhook-thread",
    )
    whatsapp_app_secret: SecretStr | None = Field(
        None, description="the Meta app secret that signs webhook bodies (X-Hub-Signature-256)"
    )
    whatsapp_verify_token: SecretStr | None = Field(
        None, description="the token Meta echoes in the GET verification handshake"
    )
    whatsapp_access_token: SecretStr | None = Field(
        None, description="the Graph API bearer token for sending"
    )
    whatsapp_phone_number_id: str = Field(
        "", description="the business phone number's id (sending path; other numbers skipped)"
    )
    # -- sending ----------------------------------------------------------------------------
    graph_base_url: str = Field(
        "https://graph.facebook.com", pattern=r"^https?://\S+$", description="Graph API base URL"
    )
    graph_api_version: str = Field(
        "v21.0", pattern=r"^v\d+\.\d+$", description="Graph API version, e.g. v21.0"
    )
    graph_retries: int = Field(4, ge=0, le=10, description="retries of a send on 429 / 5xx")
    graph_backoff: Duration = Field(
        timedelta(milliseconds=500), description="first wait before a send is retried; doubles"
    )
    graph_timeout: Duration = Field(timedelta(seconds=10), description="one send's time limit")
    window_template: str = Field(
        "", description="template sent when a reply is outside the 24-hour window ('': none)"
    )
    template_language: str = Field("en_US", min_length=2, description="the template's language")
    # -- answering --------------------------------------------------------------------------
    gateway_addr: str = Field("127.0.0.1:50051", pattern=_ADDR, description="gateway host:port")
    gateway_api_key: SecretStr | None = Field(
        None, description="API key for the gateway (unset: the gateway must allow anonymous calls)"
    )
    gateway_timeout: Duration = Field(
        timedelta(seconds=120), description="longest wait for one answer"
    )
    context_addr: str = Field(
        "127.0.0.1:50052", pattern=_ADDR, description="context service host:port (for /delete)"
    )
    tenant_id: str = Field(
        "local", min_length=1, description="the tenant of the gateway API key (for /delete)"
    )
    system_prompt: str = Field(
        "You answer questions sent over WhatsApp. Be brief and use plain text.",
        description="system prompt of every question",
    )
    max_answer_tokens: int = Field(
        400, ge=0, description="max_tokens of an answer (0: the gateway's default)"
    )
    # -- limits and windows -----------------------------------------------------------------
    user_rate_limit: int = Field(
        20, ge=0, description="messages per user per user_rate_window (0: no limit)"
    )
    user_rate_window: Duration = Field(timedelta(minutes=1), description="rate-limit window")
    user_daily_budget_nanousd: int = Field(
        0, ge=0, description="spend per user per UTC day in nano-USD (0: no budget)"
    )
    eta_notice_after: Duration = Field(
        timedelta(seconds=10), description="predicted waits above this get a 'Got it' notice first"
    )
    replay_window: Duration = Field(
        timedelta(hours=24), description="older messages (by Meta's timestamp) are not answered"
    )
    # -- workers ----------------------------------------------------------------------------
    intake_concurrency: int = Field(
        8, ge=1, le=256, description="webhook messages written to the inbox at once"
    )
    inbox_workers: int = Field(16, ge=1, le=1024, description="messages handled at once")
    inbox_poll_interval: Duration = Field(
        timedelta(seconds=1), description="how often the inbox is checked without a wake-up"
    )
    processing_lease: Duration = Field(
        timedelta(minutes=5),
        description="a claimed message goes to another worker if not finished within this",
    )
    message_max_attempts: int = Field(
        5, ge=1, le=100, description="claims of a message before the user gets an apology"
    )
    message_retry_backoff: Duration = Field(
        timedelta(seconds=2), description="first wait before a failed message is tried again"
    )


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _require(settings: Settings) -> None:
    """With the webhook on, every credential it needs must be there (named if missing)."""
    needed = {
        "LLMPROXY_WHATSAPP_APP_SECRET": _secret(settings.whatsapp_app_secret),
        "LLMPROXY_WHATSAPP_VERIFY_TOKEN": _secret(settings.whatsapp_verify_token),
        "LLMPROXY_WHATSAPP_ACCESS_TOKEN": _secret(settings.whatsapp_access_token),
        "LLMPROXY_WHATSAPP_PHONE_NUMBER_ID": settings.whatsapp_phone_number_id,
    }
    missing = [name for name, value in needed.items() if not value.strip()]
    if missing:
        raise ConfigurationError(
            f"{missing[0]}: required when LLMPROXY_WEBHOOK_PORT is set "
            f"(missing: {', '.join(missing)})"
        )


def _now() -> datetime:
    return datetime.now(UTC)


class App:
    name = "whatsapp"
    grpc_services = (whatsapp_pb2.DESCRIPTOR.services_by_name["WhatsApp"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()
        self.webhook: WebhookThread | None = None

    async def start(self, server: grpc.aio.Server) -> None:
        settings = self._settings
        opened = self._resources
        if settings.webhook_port is not None:
            _require(settings)
        engine = await connect_database(settings)
        opened.push_async_callback(engine.dispose)
        await _require_schema(engine, settings.database_url)
        inbox = SqlInbox(session_factory(engine), dialect=engine.dialect.name)
        policy = ChannelPolicy(
            replay_window=settings.replay_window,
            rate_limit=settings.user_rate_limit,
            rate_window=settings.user_rate_window,
            daily_budget_nanousd=settings.user_daily_budget_nanousd,
            eta_notice_after=settings.eta_notice_after,
        )
        graph = GraphClient(
            GraphConfig(
                base_url=settings.graph_base_url,
                version=settings.graph_api_version,
                phone_number_id=settings.whatsapp_phone_number_id,
                access_token=_secret(settings.whatsapp_access_token),
                retries=settings.graph_retries,
                backoff_s=settings.graph_backoff.total_seconds(),
                timeout_s=settings.graph_timeout.total_seconds(),
            )
        )
        opened.push_async_callback(graph.close)
        gateway = service_channel(settings.gateway_addr)
        opened.push_async_callback(gateway.close)
        context = service_channel(settings.context_addr)
        opened.push_async_callback(context.close)
        upstream = GrpcUpstream(
            gateway,
            context,
            api_key=_secret(settings.gateway_api_key),
            tenant_id=settings.tenant_id,
            timeout_s=settings.gateway_timeout.total_seconds(),
        )
        whatsapp_pb2_grpc.add_WhatsAppServicer_to_server(
            WhatsAppServicer(
                inbox,
                graph,
                tenant_id=settings.tenant_id,
                policy=policy,
                template_language=settings.template_language,
                clock=_now,
            ),
            server,
        )
        if settings.webhook_port is None:
            log.info("WhatsApp webhook off: set LLMPROXY_WEBHOOK_PORT and the credentials")
            return
        handler = MessageHandler(
            inbox,
            upstream,
            graph,
            policy=policy,
            delivery=Delivery(
                tenant_id=settings.tenant_id,
                system_prompt=settings.system_prompt,
                max_answer_tokens=settings.max_answer_tokens,
                window_template=settings.window_template,
                template_language=settings.template_language,
                max_attempts=settings.message_max_attempts,
                retry_backoff=settings.message_retry_backoff,
            ),
            clock=_now,
        )
        worker = InboxWorker(
            inbox,
            handler,
            owner=settings.instance_id,
            clock=_now,
            concurrency=settings.inbox_workers,
            poll_interval_s=settings.inbox_poll_interval.total_seconds(),
            lease=settings.processing_lease,
        )
        worker.start()
        drain = settings.drain_timeout.total_seconds()
        opened.push_async_callback(worker.stop, drain)
        bus = await connect_bus(settings, name=f"whatsapp-{settings.instance_id}")
        # closes after the webhook and the consumers stopped (LIFO)
        opened.push_async_callback(bus.close)
        intake = InboxIntake(
            inbox, wake=worker.wake, clock=_now, concurrency=settings.intake_concurrency
        )
        for subscription in await intake.subscribe(bus):
            opened.push_async_callback(subscription.stop)
        app_secret = _secret(settings.whatsapp_app_secret)
        verify_token = _secret(settings.whatsapp_verify_token)

        def webhook_app(webhook_bus: EventBus) -> Starlette:
            return build_webhook_app(
                lambda notification, now: publish_notification(webhook_bus, notification, now),
                path=settings.webhook_path,
                app_secret=app_secret,
                verify_token=verify_token,
                phone_number_id=settings.whatsapp_phone_number_id,
                max_body_bytes=settings.webhook_max_body,
                clock=_now,
            )

        self.webhook = WebhookThread(
            webhook_app,
            lambda: connect_bus(settings, name=f"whatsapp-webhook-{settings.instance_id}"),
            host=settings.webhook_host,
            port=settings.webhook_port,
            drain_timeout_s=drain,
            own_thread=settings.webhook_own_thread,
            shared_bus=bus,
        )
        await self.webhook.start()
        # stops first (LIFO): nothing new is accepted while the worker drains
        opened.push_async_callback(self.webhook.stop)

    async def stop(self) -> None:
        await self._resources.aclose()


async def _require_schema(engine, url: str) -> None:  # type: ignore[no-untyped-def]
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1 FROM whatsapp_messages WHERE 1 = 0"))
    except SQLAlchemyError:
        raise ConfigurationError(
            f"DATABASE_URL: the database at {redacted_url(url)} has no whatsapp tables; "
            "migrate it first: llmproxy db upgrade"
        ) from None
