"""Wiring of the profiler service."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import ClassVar

import grpc
from pydantic import Field

from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.connect import open_database_and_bus
from llmproxy.platform.settings import ServiceSettings
from llmproxy.profiler.usage import CONSUMER, ProfilerServicer, UsageRecorder
from llmproxy.v1 import profiler_pb2, profiler_pb2_grpc

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "profiler"

    grpc_port: int = Field(50055, ge=0, le=65535, description="gRPC port; 0 picks a free one")


class App:
    name = "profiler"
    grpc_services = (profiler_pb2.DESCRIPTOR.services_by_name["Profiler"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()

    async def start(self, server: grpc.aio.Server) -> None:
        sessions, bus = await open_database_and_bus(self._settings, self._resources, name=self.name)
        subscription = await bus.subscribe(
            LLM_COMPLETED, UsageRecorder(sessions), consumer=CONSUMER
        )
        self._resources.push_async_callback(subscription.stop)
        profiler_pb2_grpc.add_ProfilerServicer_to_server(ProfilerServicer(sessions), server)

    async def stop(self) -> None:
        await self._resources.aclose()
