"""Recording usage from ``llm.completed`` and reading it back."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.platform.db.models import UsageRecord
from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.profiler.profiling import load_profiles
from llmproxy.v1 import common_pb2, events_pb2, profiler_pb2, profiler_pb2_grpc

__all__ = ["CONSUMER", "ProfilerServicer", "insert_usage", "usage_row", "usage_values"]

#: the usage rows' idempotency records are claimed under this name
CONSUMER = "profiler-usage"
MAX_LIST = 1000
_CACHE_OUTCOMES = {v.number: v.name for v in common_pb2.CacheOutcome.DESCRIPTOR.values}
_STRATEGIES = {v.number: v.name for v in common_pb2.ContextStrategy.DESCRIPTOR.values}


def usage_values(event: events_pb2.LlmCompleted, event_id: str) -> dict[str, Any]:
    """The usage row's columns for one completion event (pure mapping)."""
    scope = event.scope
    return {
        "id": str(uuid.uuid4()),
        "event_id": event_id,
        "request_id": event.request_id,
        "tenant_id": scope.tenant_id or None,
        "app_id": scope.app_id or None,
        "user_id": scope.user_id or None,
        "conversation_id": scope.conversation_id or None,
        "provider": event.choice.provider,
        "model": event.choice.model,
        "input_tokens": event.usage.input_tokens,
        "cached_input_tokens": event.usage.cached_input_tokens,
        "output_tokens": event.usage.output_tokens,
        "cost_nanousd": event.cost.cost_nanousd,
        "reference_cost_nanousd": event.cost.reference_cost_nanousd,
        "saved_nanousd": event.cost.saved_nanousd,
        "latency_ms": event.latency.ToMilliseconds() if event.HasField("latency") else None,
        "ttft_ms": (
            event.time_to_first_token.ToMilliseconds()
            if event.HasField("time_to_first_token")
            else None
        ),
        "cache_outcome": _CACHE_OUTCOMES.get(event.cache.outcome)
        or common_pb2.CacheOutcome.Name(event.cache.outcome),
        "context_strategy": _STRATEGIES.get(event.context.strategy)
        or common_pb2.ContextStrategy.Name(event.context.strategy),
        "tokens_sent": event.context.tokens_sent,
        "tokens_full_history": event.context.tokens_full_history,
        "error": event.error,
        "created_at": event.meta.occurred_at.ToDatetime(UTC),
    }


def usage_row(event: events_pb2.LlmCompleted, event_id: str) -> UsageRecord:
    """The usage row for one completion event (pure mapping)."""
    return UsageRecord(**usage_values(event, event_id))


async def insert_usage(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert usage rows (one statement for all of them)."""
    if rows:
        await session.execute(insert(UsageRecord), list(rows))


class ProfilerServicer(profiler_pb2_grpc.ProfilerServicer):
    """ListUsage and GetProfiles. EstimateJobSize comes with scheduling."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._now = clock

    async def GetProfiles(
        self, request: profiler_pb2.GetProfilesRequest, context: grpc.aio.ServicerContext
    ) -> profiler_pb2.GetProfilesReply:
        for index, name in enumerate(request.models):
            if not name.strip():
                raise InvalidArgumentError(
                    "model names must not be empty", field=f"models[{index}]"
                )
        profiles = await load_profiles(self._sessions, request.models)
        return profiler_pb2.GetProfilesReply(profiles=profiles)

    async def ListUsage(
        self, request: profiler_pb2.ListUsageRequest, context: grpc.aio.ServicerContext
    ) -> profiler_pb2.ListUsageReply:
        if not request.tenant_id:
            raise InvalidArgumentError("tenant_id is required", field="tenant_id")
        limit = request.limit or 100
        if not 1 <= limit <= MAX_LIST:
            raise InvalidArgumentError(f"limit must be between 1 and {MAX_LIST}", field="limit")
        query = (
            select(UsageRecord)
            .where(UsageRecord.tenant_id == request.tenant_id)
            .order_by(UsageRecord.created_at.desc())
            .limit(limit)
        )
        if request.request_id:
            query = query.where(UsageRecord.request_id == request.request_id)
        async with self._sessions() as session:
            rows: list[UsageRecord] = list(await session.scalars(query))
        records = []
        for row in rows:
            record = profiler_pb2.UsageRecord(
                request_id=row.request_id,
                tenant_id=row.tenant_id or "",
                app_id=row.app_id or "",
                user_id=row.user_id or "",
                conversation_id=row.conversation_id or "",
                model=row.model,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                cost_nanousd=row.cost_nanousd,
                saved_nanousd=row.saved_nanousd,
                latency_seconds=(row.latency_ms or 0.0) / 1000,
                cache_hit=row.cache_outcome.endswith("_HIT"),
            )
            record.created_at.FromDatetime(row.created_at)
            records.append(record)
        return profiler_pb2.ListUsageReply(records=records)
