"""Wiring of the cache service."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import ClassVar

import grpc
import structlog
from pydantic import Field, model_validator

from llmproxy.cache.engine import (
    CACHE_STORED,
    FEEDBACK_CONSUMER,
    STORE_CONSUMER,
    ResponseCache,
)
from llmproxy.cache.eviction import EvictionKind
from llmproxy.cache.memory import CacheMemory
from llmproxy.cache.policy import AppPolicy, Mode, StoreLimits
from llmproxy.cache.servicer import CacheServicer
from llmproxy.platform.bus.port import Delivery
from llmproxy.platform.bus.subjects import CACHE_INVALIDATE, LLM_COMPLETED, LLM_FEEDBACK
from llmproxy.platform.connect import open_database_and_bus
from llmproxy.platform.embeddings import DIMENSIONS, Embedder
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.v1 import cache_pb2, cache_pb2_grpc

__all__ = ["App", "Settings"]

log = structlog.get_logger(__name__)


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "cache"

    grpc_port: int = Field(50053, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    mode: Mode = Field(Mode.SEMANTIC, description="what a request that names no mode gets")
    similarity_threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="semantic hit at or above this cosine similarity"
    )
    min_similarity_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="lowest threshold a request may ask for"
    )
    app_thresholds: dict[str, float] = Field(
        default_factory=dict, description="per-app similarity thresholds, app id -> [0, 1]"
    )
    ttl: Duration = Field(timedelta(hours=24), description="how long an answer is served")
    max_ttl: Duration = Field(timedelta(days=30), description="the longest TTL a store may ask")
    app_ttls: dict[str, Duration] = Field(default_factory=dict, description="per-app TTLs")
    max_entries: int = Field(
        200_000, ge=1, description="entries held in memory per replica (then evicted)"
    )
    eviction: EvictionKind = Field(EvictionKind.LRU, description="lru or lfu")
    ann_min_entries: int = Field(
        2_000, ge=1, description="a scope this large moves from exact search to an IVF index"
    )
    max_answer_chars: int = Field(64_000, ge=1, description="longer answers are not stored")
    semantic: bool = Field(True, description="load the embedding model; false: exact matching only")
    sweep_interval: Duration = Field(
        timedelta(minutes=1), description="how often expired entries are dropped"
    )

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> Settings:
        for app_id, threshold in {"": self.similarity_threshold, **self.app_thresholds}.items():
            if not self.min_similarity_threshold <= threshold <= 1.0:
                name = f"app_thresholds[{app_id}]" if app_id else "similarity_threshold"
                raise ValueError(
                    f"{name} must lie within [min_similarity_threshold, 1], not {threshold}"
                )
        return self

    def app_policy(self, app_id: str) -> AppPolicy:
        return AppPolicy(
            mode=self.mode,
            threshold=self.app_thresholds.get(app_id, self.similarity_threshold),
            min_threshold=self.min_similarity_threshold,
            ttl=min(self.app_ttls.get(app_id, self.ttl), self.max_ttl),
            max_ttl=self.max_ttl,
        )


class App:
    name = "cache"
    grpc_services = (cache_pb2.DESCRIPTOR.services_by_name["Cache"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()

    async def start(self, server: grpc.aio.Server) -> None:
        settings = self._settings
        sessions, bus = await open_database_and_bus(settings, self._resources, name=self.name)
        embedder = None
        if settings.semantic:
            embedder = Embedder()
            await asyncio.to_thread(embedder.embed, ["warm up"])  # load the model now
        cache = ResponseCache(
            CacheMemory(
                dimensions=DIMENSIONS,
                max_entries=settings.max_entries,
                eviction=settings.eviction,
                ann_min_entries=settings.ann_min_entries,
            ),
            sessions,
            bus,
            embedder,
            apps=settings.app_policy,
            limits=StoreLimits(max_answer_chars=settings.max_answer_chars),
            source=f"cache-{settings.instance_id}",
        )
        # broadcasts first, then the load: nothing published meanwhile is missed
        for subject, handler in (
            (CACHE_STORED, cache.on_stored),
            (CACHE_INVALIDATE, cache.on_invalidate),
        ):
            subscription = await bus.subscribe(
                subject,
                handler,
                consumer=f"{subject.replace('.', '-')}-{settings.instance_id}",
                delivery=Delivery.BROADCAST,
            )
            self._resources.push_async_callback(subscription.stop)
        loaded = await cache.rebuild()
        log.info("cache loaded", entries=loaded)
        for subject, handler, consumer in (
            (LLM_COMPLETED, cache.on_completed, STORE_CONSUMER),
            (LLM_FEEDBACK, cache.on_feedback, FEEDBACK_CONSUMER),
        ):
            subscription = await bus.subscribe(subject, handler, consumer=consumer)
            self._resources.push_async_callback(subscription.stop)
        sweeper = asyncio.create_task(self._sweep(cache), name="cache-sweeper")
        self._resources.push_async_callback(_cancel, sweeper)
        cache_pb2_grpc.add_CacheServicer_to_server(CacheServicer(cache), server)

    async def _sweep(self, cache: ResponseCache) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval.total_seconds())
            try:
                await cache.sweep()
            except Exception:  # the next sweep tries again; lookups skip expired entries
                log.exception("cache sweep failed")

    async def stop(self) -> None:
        await self._resources.aclose()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
