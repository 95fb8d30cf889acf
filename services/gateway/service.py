"""Wiring of the gateway service: settings, dependencies, servicers."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import ClassVar

import grpc
from pydantic import Field

from llmproxy.gateway.ask import AskFlow, Caller
from llmproxy.gateway.catalog import load_catalog
from llmproxy.gateway.context_client import GrpcContextClient
from llmproxy.gateway.providers.openai_compat import OpenAICompatibleProvider
from llmproxy.gateway.servicer import GatewayServicer
from llmproxy.platform.connect import connect_bus
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.v1 import gateway_pb2, gateway_pb2_grpc

__all__ = ["App", "Settings"]

LOCAL_MODEL = "smollm2-135m-instruct"


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"

    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    context_addr: str = Field(
        "127.0.0.1:50052", pattern=r"^[^\s:]+:\d+$", description="context service host:port"
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
    default_tenant: str = Field("local", min_length=1, description="tenant of unauthenticated calls")
    default_app: str = Field("default", min_length=1, description="app of unauthenticated calls")


class App:
    name = "gateway"
    grpc_services = (gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()

    async def start(self, server: grpc.aio.Server) -> None:
        settings = self._settings
        catalog = load_catalog(
            settings.catalog_file,
            environ=os.environ,
            overrides={LOCAL_MODEL: {"base_url": settings.local_model_url}},
        )
        opened = self._resources
        providers = {}
        for model in catalog.available():
            providers[model.name] = provider = OpenAICompatibleProvider(
                model.name,
                base_url=model.base_url,
                api_key=os.environ.get(model.api_key_env, "") if model.api_key_env else "",
            )
            opened.push_async_callback(provider.close)
        bus = await connect_bus(settings, name=f"gateway-{settings.instance_id}")
        opened.push_async_callback(bus.close)
        channel = grpc.aio.insecure_channel(settings.context_addr)
        opened.push_async_callback(channel.close)
        flow = AskFlow(
            catalog=catalog,
            providers=providers,
            context=GrpcContextClient(channel),
            bus=bus,
            provider_timeout_s=settings.provider_timeout.total_seconds(),
        )
        # Last in, first out: events still being published finish before the bus closes.
        opened.push_async_callback(flow.drain)
        gateway_pb2_grpc.add_GatewayServicer_to_server(
            GatewayServicer(flow, Caller(settings.default_tenant, settings.default_app)),
            server,
        )

    async def stop(self) -> None:
        await self._resources.aclose()
