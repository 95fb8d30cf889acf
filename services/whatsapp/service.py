"""Wiring of the whatsapp service.

Its gRPC API (WhatsApp in proto/llmproxy/v1/whatsapp.proto) is not built yet: the process runs,
reports its health, and answers every WhatsApp call with UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from llmproxy.platform.health_only import HealthOnlyApp
from llmproxy.platform.settings import ServiceSettings

__all__ = ["App", "Settings"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "whatsapp"

    grpc_port: int = Field(50057, ge=0, le=65535, description="gRPC port; 0 picks a free one")


class App(HealthOnlyApp):
    name = "whatsapp"
