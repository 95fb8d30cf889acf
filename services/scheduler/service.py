"""Wiring of the scheduler service.

Its gRPC API (Scheduler in proto/llmproxy/v1/scheduler.proto) is not built yet: the process runs,
reports its health, and answers every Scheduler call with UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from llmproxy.platform.health_only import HealthOnlyApp
from llmproxy.platform.settings import ServiceSettings

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "scheduler"

    grpc_port: int = Field(50054, ge=0, le=65535, description="gRPC port; 0 picks a free one")


class App(HealthOnlyApp):
    name = "scheduler"
