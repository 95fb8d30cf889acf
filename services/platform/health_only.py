"""The app of a service whose gRPC API is not built yet: it runs and reports its health."""

from __future__ import annotations

import grpc

__all__ = ["HealthOnlyApp"]


class HealthOnlyApp:
    """Serves the health service only; every call of its own API answers UNIMPLEMENTED."""

    name = ""
    grpc_services: tuple[str, ...] = ()

    def __init__(self, settings: object) -> None:
        self._settings = settings

    async def start(self, server: grpc.aio.Server) -> None:
        return None

    async def stop(self) -> None:
        return None
