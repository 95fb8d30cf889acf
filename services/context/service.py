"""Wiring of the context service."""

from __future__ import annotations

import dataclasses
import os
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import ClassVar, Literal

import grpc
import structlog
from pydantic import Field, ValidationInfo, field_validator

from llmproxy.context.history_cache import HistoryCache, PromptVectors
from llmproxy.context.recorder import CONSUMER, TurnRecorder
from llmproxy.context.servicer import ContextServicer
from llmproxy.context.strategies import MAX_K, ContextDefaults, Strategy
from llmproxy.context.summaries import ProviderSummaryModel, SummaryRefresher, cheapest_model
from llmproxy.context.summary import SummaryPolicy
from llmproxy.gateway.catalog import load_catalog
from llmproxy.gateway.providers.openai_compat import OpenAICompatibleProvider
from llmproxy.platform.bus.port import Delivery, Envelope
from llmproxy.platform.bus.subjects import CACHE_INVALIDATE, LLM_COMPLETED
from llmproxy.platform.connect import open_database_and_bus
from llmproxy.platform.embeddings import Embedder
from llmproxy.platform.events import decode_event
from llmproxy.platform.settings import Duration, ServiceSettings
from llmproxy.platform.tokens import count_tokens
from llmproxy.v1 import context_pb2, context_pb2_grpc, events_pb2

__all__ = ["App", "Settings"]

log = structlog.get_logger(__name__)

StrategyName = Literal["full", "last_k", "token_budget", "summary", "relevant"]


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "context"

    grpc_port: int = Field(50052, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    default_strategy: StrategyName = Field(
        "relevant",
        description="strategy of requests that name none (chosen by bench/context, see its README)",
    )
    app_strategies: dict[str, StrategyName] = Field(
        default_factory=dict,
        description='per-app default strategies as JSON, e.g. {"whatsapp": "summary"}',
    )
    relevant_k: int = Field(
        4, ge=1, le=MAX_K, description="similar earlier turns `relevant` sends when k is 0"
    )
    embeddings: bool = Field(
        True, description="embed turns (needed by `relevant`); off: `relevant` is refused"
    )
    embedding_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads per call")
    history_cache_turns: int = Field(
        50_000,
        ge=0,
        le=10_000_000,
        description="turns (with their vectors, ~1.6 KiB each) kept in memory between "
        "builds, least recently used conversations out first; 0: off",
    )
    history_cache_idle: Duration = Field(
        timedelta(minutes=10), description="a conversation not built for this long leaves memory"
    )
    summaries: bool = Field(True, description="write rolling summaries for `summary`")
    summary_model: str | None = Field(
        None, description="catalog model that writes summaries (unset: the cheapest available)"
    )
    summary_keep_recent: int = Field(
        6, ge=0, le=1000, description="newest turns never folded into the summary"
    )
    summary_min_batch: int = Field(
        4, ge=1, le=1000, description="turns that must wait beyond those before a fold"
    )
    summary_timeout: Duration = Field(
        timedelta(seconds=120), description="longest wait for the summariser's answer"
    )
    catalog_file: str | None = Field(None, description="path of a catalog JSON file")
    local_model_url: str = Field(
        "http://127.0.0.1:8081/v1",
        pattern=r"^https?://\S+$",
        description="base URL of the local OpenAI-compatible model server",
    )

    @field_validator("embeddings")
    @classmethod
    def _relevant_needs_embeddings(cls, value: bool, info: ValidationInfo) -> bool:
        defaults = (
            info.data.get("default_strategy"),
            *info.data.get("app_strategies", {}).values(),
        )
        if not value and "relevant" in defaults:
            raise ValueError("must stay on while a default strategy is `relevant`")
        return value


class App:
    name = "context"
    grpc_services = (context_pb2.DESCRIPTOR.services_by_name["Context"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resources = AsyncExitStack()
        #: this replica's history cache (set by ``start``)
        self.history_cache: HistoryCache | None = None

    async def start(self, server: grpc.aio.Server) -> None:
        settings = self._settings
        sessions, bus = await open_database_and_bus(settings, self._resources, name=self.name)
        embedder = Embedder(threads=settings.embedding_threads) if settings.embeddings else None
        if embedder is not None:
            embedder.embed(["warm up"])  # load now: a first request should not pay for it
        refresher = None
        if settings.summaries:
            refresher = SummaryRefresher(
                sessions,
                await self._summary_model(),
                policy=SummaryPolicy(
                    keep_recent=settings.summary_keep_recent,
                    min_batch=settings.summary_min_batch,
                ),
                count_tokens=count_tokens,
                bus=bus,
            )
            self._resources.push_async_callback(refresher.close)
        history_cache = HistoryCache(
            max_turns=settings.history_cache_turns,
            max_idle_s=settings.history_cache_idle.total_seconds(),
        )
        prompt_vectors = PromptVectors()
        self.history_cache = history_cache

        async def on_invalidate(envelope: Envelope) -> None:
            # an erasure through any replica: drop what this one holds of the conversation
            event = decode_event(envelope, events_pb2.CacheInvalidate)
            if event.conversation_id:
                history_cache.evict_conversation(event.conversation_id)
                prompt_vectors.forget_conversation(event.conversation_id)

        invalidations = await bus.subscribe(
            CACHE_INVALIDATE,
            on_invalidate,
            consumer=f"context-invalidate-{settings.instance_id}",
            delivery=Delivery.BROADCAST,
        )
        self._resources.push_async_callback(invalidations.stop)
        recorder = TurnRecorder(
            sessions,
            count_tokens,
            embedder=embedder,
            refresher=refresher,
            prompt_vectors=prompt_vectors,
        )
        subscription = await bus.subscribe(LLM_COMPLETED, recorder, consumer=CONSUMER)
        self._resources.push_async_callback(subscription.stop)
        defaults = ContextDefaults(
            strategy=Strategy(settings.default_strategy),
            app_strategies={app: Strategy(s) for app, s in settings.app_strategies.items()},
            relevant_k=settings.relevant_k,
        )
        context_pb2_grpc.add_ContextServicer_to_server(
            ContextServicer(
                sessions,
                count_tokens,
                embedder=embedder,
                defaults=defaults,
                bus=bus,
                history_cache=history_cache,
                prompt_vectors=prompt_vectors,
            ),
            server,
        )

    async def _summary_model(self) -> ProviderSummaryModel:
        settings = self._settings
        catalog = load_catalog(settings.catalog_file, environ=os.environ)
        model = cheapest_model(catalog, pinned=settings.summary_model)
        if model.provider == "local":  # its address is known only at run time
            model = dataclasses.replace(model, base_url=settings.local_model_url)
        provider = OpenAICompatibleProvider(
            model.name,
            base_url=model.base_url,
            api_key=os.environ.get(model.api_key_env, "") if model.api_key_env else "",
        )
        self._resources.push_async_callback(provider.close)
        log.info("summaries by", model=model.name, provider=model.provider)
        return ProviderSummaryModel(model, provider, timeout=settings.summary_timeout)

    async def stop(self) -> None:
        await self._resources.aclose()
