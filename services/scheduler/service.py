"""Wiring of the scheduler service: the live PCS scheduler behind the ``Scheduler`` gRPC API.

Jobs, executors, predictions and the WFQ configuration live in the database; the service
loads them at start, so a restarted scheduler resumes with the same queue. ``policy.updated``
events carrying a WFQ configuration switch the configuration live.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from typing import ClassVar

import grpc
from pydantic import Field

from llmproxy.platform.bus.subjects import POLICY_UPDATED
from llmproxy.platform.connect import open_database_and_bus
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.scheduler.engine import POLICY_CONSUMER, SchedulerEngine
from llmproxy.scheduler.live import LiveScheduler, Tolerance
from llmproxy.scheduler.repository import SchedulerRepository
from llmproxy.scheduler.servicer import SchedulerServicer
from llmproxy.scheduler.sizing import SizeEstimator
from llmproxy.scheduler.timebase import TimeBase
from llmproxy.v1 import scheduler_pb2, scheduler_pb2_grpc

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "scheduler"

    grpc_port: int = Field(50054, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    heartbeat_interval: Duration = Field(
        timedelta(seconds=2), description="how often executors report (wall clock)"
    )
    executor_timeout: Duration = Field(
        timedelta(seconds=10),
        description="an executor silent this long (wall clock) is lost; its jobs are requeued",
    )
    time_scale: float = Field(
        1.0,
        gt=0,
        le=1e6,
        description="scheduler seconds per wall second; above 1 only for accelerated "
        "simulated runs (keep it unchanged across restarts)",
    )
    revise_tolerance: float = Field(
        1.0, ge=0, description="a prediction moving less than this many seconds is not revised"
    )
    size_model_retrain_every: int = Field(
        20, ge=1, description="refit the job-size model after this many completions"
    )


class App:
    name = "scheduler"
    grpc_services = (scheduler_pb2.DESCRIPTOR.services_by_name["Scheduler"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()
        self.engine: SchedulerEngine | None = None

    async def start(self, server: grpc.aio.Server) -> None:
        settings = self._settings
        sessions, bus = await open_database_and_bus(settings, self._resources, name=self.name)
        timebase = TimeBase(scale=settings.time_scale)
        core = LiveScheduler(
            executor_timeout=settings.executor_timeout.total_seconds() * settings.time_scale,
            tolerance=Tolerance(absolute=settings.revise_tolerance),
        )
        engine = SchedulerEngine(
            core,
            SchedulerRepository(sessions, timebase),
            bus,
            timebase,
            source=f"scheduler-{settings.instance_id}",
            sizes=SizeEstimator(retrain_every=settings.size_model_retrain_every),
        )
        heartbeat = settings.heartbeat_interval.total_seconds()
        await engine.start(expiry_interval=max(heartbeat / 2, 0.05))
        self._resources.push_async_callback(engine.stop)
        self.engine = engine
        subscription = await bus.subscribe(
            POLICY_UPDATED, engine.on_policy_updated, consumer=POLICY_CONSUMER
        )
        self._resources.push_async_callback(subscription.stop)
        scheduler_pb2_grpc.add_SchedulerServicer_to_server(
            SchedulerServicer(engine, heartbeat_interval=heartbeat), server
        )

    async def stop(self) -> None:
        await self._resources.aclose()
