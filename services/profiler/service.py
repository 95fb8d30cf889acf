"""Wiring of the profiler service."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from typing import ClassVar

import grpc
from pydantic import Field

from llmproxy.platform.bus.subjects import LLM_COMPLETED, LLM_FEEDBACK
from llmproxy.platform.connect import open_database_and_bus
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.profiler.profiling import (
    COMPLETIONS_CONSUMER,
    FEEDBACK_CONSUMER,
    CompletionProfiler,
    FeedbackProfiler,
    ProfilePublisher,
)
from llmproxy.profiler.usage import CONSUMER, ProfilerServicer, UsageRecorder
from llmproxy.v1 import profiler_pb2, profiler_pb2_grpc

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "profiler"

    grpc_port: int = Field(50055, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    profile_publish_interval: Duration = Field(
        timedelta(seconds=5), description="least time between two profile.updated events"
    )


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
        publisher = ProfilePublisher(
            sessions, bus, interval_s=self._settings.profile_publish_interval.total_seconds()
        )
        publisher.start()
        # stops after the subscriptions below (LIFO), so their last changes are published
        self._resources.push_async_callback(publisher.stop)
        for subject, handler, consumer in (
            (LLM_COMPLETED, CompletionProfiler(sessions, publisher), COMPLETIONS_CONSUMER),
            (LLM_FEEDBACK, FeedbackProfiler(sessions, publisher), FEEDBACK_CONSUMER),
        ):
            subscription = await bus.subscribe(subject, handler, consumer=consumer)
            self._resources.push_async_callback(subscription.stop)
        profiler_pb2_grpc.add_ProfilerServicer_to_server(ProfilerServicer(sessions), server)

    async def stop(self) -> None:
        await self._resources.aclose()
