"""Wiring of the scheduler service.

Its gRPC API (Scheduler in proto/llmproxy/v1/scheduler.proto) is not built yet: the process runs,
reports its health, and answers every Scheduler call with UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import ClassVar

import grpc
from pydantic import Field

from llmproxy.platform.settings import ServiceSettings

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "scheduler"

    grpc_port: int = Field(50054, ge=0, le=65535, description="gRPC port; 0 picks a free one")


class App:
    name = "scheduler"
    #: nothing registered yet, so health reports only the server as a whole
    grpc_services: tuple[str, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def start(self, server: grpc.aio.Server) -> None:
        return None

    async def stop(self) -> None:
        return None
