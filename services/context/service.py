"""Wiring of the context service."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import ClassVar

import grpc
from pydantic import Field

from llmproxy.context.servicer import CONSUMER, ContextServicer, TurnRecorder
from llmproxy.platform.tokens import count_tokens
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.connect import open_database_and_bus
from llmproxy.platform.settings import ServiceSettings
from llmproxy.v1 import context_pb2, context_pb2_grpc

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "context"

    grpc_port: int = Field(50052, ge=0, le=65535, description="gRPC port; 0 picks a free one")


class App:
    name = "context"
    grpc_services = (context_pb2.DESCRIPTOR.services_by_name["Context"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()

    async def start(self, server: grpc.aio.Server) -> None:
        sessions, bus = await open_database_and_bus(
            self._settings, self._resources, name=self.name
        )
        subscription = await bus.subscribe(
            LLM_COMPLETED, TurnRecorder(sessions, count_tokens), consumer=CONSUMER
        )
        self._resources.push_async_callback(subscription.stop)
        context_pb2_grpc.add_ContextServicer_to_server(
            ContextServicer(sessions, count_tokens), server
        )

    async def stop(self) -> None:
        await self._resources.aclose()
