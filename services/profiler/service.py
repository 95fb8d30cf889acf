"""Wiring of the profiler service."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from typing import ClassVar

import grpc
from pydantic import Field
from sqlalchemy.engine import make_url

from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.bus.subjects import LLM_FEEDBACK
from llmproxy.platform.connect import open_database_and_bus
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.profiler.completions import BATCH_BUS_OPTIONS, CompletionConsumer
from llmproxy.profiler.profiling import FEEDBACK_CONSUMER, FeedbackProfiler, ProfilePublisher
from llmproxy.profiler.usage import ProfilerServicer
from llmproxy.v1 import profiler_pb2, profiler_pb2_grpc

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "profiler"

    grpc_port: int = Field(50055, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    profile_publish_interval: Duration = Field(
        timedelta(seconds=5), description="least time between two profile.updated events"
    )
    completion_consumers: int = Field(
        2, ge=1, le=64, description="concurrent fetches of llm.completed (each up to 128 events)"
    )
    completion_batch_window: Duration = Field(
        timedelta(milliseconds=5),
        description="how long the first event of a batch waits for others to join it",
    )
    completion_max_batch: int = Field(
        256, ge=1, le=2000, description="most llm.completed events written in one transaction"
    )


class App:
    name = "profiler"
    grpc_services = (profiler_pb2.DESCRIPTOR.services_by_name["Profiler"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()

    async def start(self, server: grpc.aio.Server) -> None:
        settings = self._settings
        sessions, bus = await open_database_and_bus(settings, self._resources, name=self.name)
        publisher = ProfilePublisher(
            sessions, bus, interval_s=settings.profile_publish_interval.total_seconds()
        )
        publisher.start()
        # stops after the subscriptions below (LIFO), so their last changes are published
        self._resources.push_async_callback(publisher.stop)
        dialect = make_url(settings.database_url).get_backend_name()
        completions = CompletionConsumer(
            sessions,
            publisher,
            dialect=dialect,
            window_s=settings.completion_batch_window.total_seconds(),
            max_batch=settings.completion_max_batch,
        )
        # a connection of its own, whose fetches bring many events at once
        batch_bus = await JetStreamBus.connect(
            settings.nats_url,
            name=f"{self.name}-batches-{settings.instance_id}",
            connect_timeout=2.0,
            retries=settings.connect_retries,
            backoff=settings.connect_backoff.total_seconds(),
            options=BATCH_BUS_OPTIONS,
        )
        self._resources.push_async_callback(batch_bus.close)
        for subscription in await completions.subscribe(
            batch_bus, concurrency=settings.completion_consumers
        ):
            self._resources.push_async_callback(subscription.stop)
        subscription = await bus.subscribe(
            LLM_FEEDBACK, FeedbackProfiler(sessions, publisher), consumer=FEEDBACK_CONSUMER
        )
        self._resources.push_async_callback(subscription.stop)
        profiler_pb2_grpc.add_ProfilerServicer_to_server(ProfilerServicer(sessions), server)

    async def stop(self) -> None:
        await self._resources.aclose()
