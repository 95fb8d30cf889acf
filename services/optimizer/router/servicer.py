"""The Optimizer's router calls (TrainRouter, ActivateRouter, ListRouters), ready to mount.

The optimizer's servicer owns the gRPC class; it delegates these three calls here
(``RouterCalls(sessions, bus)``). Training embeds thousands of prompts, so it runs in a
worker thread; the embeddings are cached on disk after the first run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.optimizer.router.jobs import train_router
from llmproxy.optimizer.router.model import ROUTING_MAX_TOKENS
from llmproxy.optimizer.router.store import (
    RouterSummary,
    activate_router,
    list_routers,
    policy_event,
    save_router,
)
from llmproxy.platform.bus.port import EventBus
from llmproxy.platform.bus.subjects import POLICY_UPDATED
from llmproxy.platform.embeddings import Embedder, TextEmbedder
from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.platform.events import publish_event
from llmproxy.v1 import optimizer_pb2

__all__ = ["RouterCalls"]


def _model(summary: RouterSummary) -> optimizer_pb2.RouterModel:
    message = optimizer_pb2.RouterModel(version=summary.version, active=summary.active)
    message.eval_metrics.update(summary.metrics)
    message.created_at.FromDatetime(summary.created_at)
    return message


class RouterCalls:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        embedder: TextEmbedder | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        source: str = "optimizer",
    ) -> None:
        self._sessions = sessions
        self._bus = bus
        self._embedder = embedder or Embedder(max_tokens=ROUTING_MAX_TOKENS)
        self._now = clock
        self._source = source

    async def _summary(self, version: str) -> RouterSummary:
        return next(r for r in await list_routers(self._sessions) if r.version == version)

    async def train(self, request: optimizer_pb2.TrainRouterRequest) -> optimizer_pb2.RouterModel:
        models = list(request.candidate_models) or ["gpt-4o-mini", "gpt-4o"]
        if len(models) != 2:
            raise InvalidArgumentError(
                "candidate_models: give two models, cheapest first (the MMLU data labels two)",
                field="candidate_models",
            )
        now = self._now()
        version = f"r{now:%Y%m%d%H%M%S}"
        router = await asyncio.to_thread(
            train_router,
            version=version,
            embedder=self._embedder,
            cheap_model=models[0],
            strong_model=models[1],
            domains=list(request.train_domains),
            seed=request.seed or 7,
        )
        await save_router(self._sessions, router, now=now)
        return _model(await self._summary(version))

    async def activate(self, request: optimizer_pb2.RouterRef) -> optimizer_pb2.RouterModel:
        if not request.version:
            raise InvalidArgumentError("version is required", field="version")
        router = await activate_router(self._sessions, request.version, now=self._now())
        await publish_event(self._bus, POLICY_UPDATED, policy_event(router, source=self._source))
        return _model(await self._summary(request.version))

    async def list(self) -> optimizer_pb2.ListRoutersReply:
        routers = await list_routers(self._sessions)
        return optimizer_pb2.ListRoutersReply(routers=[_model(r) for r in routers])
