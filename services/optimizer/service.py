"""Wiring of the optimizer service: the PCS search API (StartSearch, GetSearch, ListSearches,
ApplyConfig), and an evaluation worker on the shared ``search.evaluate`` work queue.

Every replica evaluates tasks from the queue; the replica that receives StartSearch drives
that search and publishes its evaluations to the queue (so N replicas share the work). The
router calls are not built here (UNIMPLEMENTED).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import ClassVar

import grpc
from pydantic import Field

from llmproxy.optimizer.history import HistoryReader
from llmproxy.optimizer.repository import SearchRepository
from llmproxy.optimizer.runner import make_process_pool
from llmproxy.optimizer.servicer import OptimizerServicer
from llmproxy.optimizer.work_queue import MAX_DELIVERIES, EvaluationWorker, QueueEvaluator
from llmproxy.platform.connect import open_database_and_bus
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.v1 import optimizer_pb2, optimizer_pb2_grpc

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "optimizer"

    grpc_port: int = Field(50056, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    eval_processes: int = Field(
        1,
        ge=0,
        le=256,
        description="simulations this replica runs at once (worker processes); "
        "0: this replica drives searches but evaluates nothing",
    )
    eval_ack_wait: Duration = Field(
        timedelta(seconds=60),
        description="a task held this long by a silent (dead) replica goes to another one",
    )
    eval_max_deliveries: int = Field(
        MAX_DELIVERIES,
        ge=1,
        le=100,
        description="deliveries of one evaluation task (failed simulations, dead replicas) "
        "before its configuration is stored as failed and the message terminated",
    )


class App:
    name = "optimizer"
    grpc_services = (optimizer_pb2.DESCRIPTOR.services_by_name["Optimizer"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()
        self.worker: EvaluationWorker | None = None

    async def start(self, server: grpc.aio.Server) -> None:
        settings = self._settings
        sessions, bus = await open_database_and_bus(settings, self._resources, name=self.name)
        repository = SearchRepository(sessions)
        source = f"optimizer-{settings.instance_id}"
        if settings.eval_processes > 0:
            pool = make_process_pool(settings.eval_processes)
            # waited for (off the event loop): a worker left behind would outlive the service
            self._resources.push_async_callback(
                asyncio.to_thread, pool.shutdown, wait=True, cancel_futures=True
            )
            self.worker = EvaluationWorker(
                repository,
                bus,
                pool,
                instance_id=settings.instance_id,
                concurrency=settings.eval_processes,
                ack_wait=settings.eval_ack_wait,
                max_deliveries=settings.eval_max_deliveries,
            )
            await self.worker.start()
            self._resources.push_async_callback(self.worker.stop)
        servicer = OptimizerServicer(
            repository,
            bus,
            QueueEvaluator(repository, bus, source),
            source=source,
            history=HistoryReader(sessions),
        )
        self._resources.push_async_callback(servicer.stop)
        optimizer_pb2_grpc.add_OptimizerServicer_to_server(servicer, server)

    async def stop(self) -> None:
        await self._resources.aclose()
