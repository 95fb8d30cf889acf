"""The profiler's batched ``llm.completed`` consumer on real JetStream and each database:
usage rows and profiles written one transaction per batch, a redelivered batch (or an event
redelivered inside a batch) never counted twice, a bad event refused without touching the
rest."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.db.models import (
    ModelProfileRow,
    ProcessedEvent,
    ProfiledRequest,
    UsageRecord,
)
from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.profiler.completions import (
    BATCH_BUS_OPTIONS,
    CompletionConsumer,
    completed_event,
)
from llmproxy.profiler.profiling import COMPLETIONS_CONSUMER
from llmproxy.profiler.usage import CONSUMER
from llmproxy.v1 import common_pb2, events_pb2

pytestmark = pytest.mark.nats


def _completed(
    index: int, model: str, *, hit: bool = False, error: bool = False
) -> events_pb2.LlmCompleted:
    event = events_pb2.LlmCompleted(
        meta=new_event_meta("test"),
        request_id=f"req-{index}",
        scope=common_pb2.Scope(tenant_id="acme", app_id="web"),
        choice=common_pb2.ModelChoice(provider="openai-compatible", model=model),
        usage=common_pb2.TokenUsage(input_tokens=20, output_tokens=51),
        cost=common_pb2.Cost(cost_nanousd=0 if hit or error else 5_000),
        cache=common_pb2.CacheReport(
            outcome=common_pb2.CACHE_OUTCOME_EXACT_HIT if hit else common_pb2.CACHE_OUTCOME_MISS
        ),
        task_category="math",
        error=error,
    )
    event.latency.FromMilliseconds(1000 + index)
    event.time_to_first_token.FromMilliseconds(200)
    return event


async def _counts(sessions) -> dict[str, object]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        usage = await session.scalar(select(func.count()).select_from(UsageRecord))
        spent = await session.scalar(select(func.coalesce(func.sum(UsageRecord.cost_nanousd), 0)))
        requests = dict(
            (await session.execute(select(ModelProfileRow.model, ModelProfileRow.requests))).all()
        )
        profiled = await session.scalar(select(func.count()).select_from(ProfiledRequest))
        claims = await session.scalar(select(func.count()).select_from(ProcessedEvent))
    return {
        "usage": usage,
        "spent": spent,
        "requests": requests,
        "profiled": profiled,
        "claims": claims,
    }


async def test_completions_are_written_in_batches_and_a_redelivered_batch_counts_once(
    db_url: str, nats_url: str
) -> None:
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    bus = await JetStreamBus.connect(
        nats_url, name="test-profiler-batches", options=BATCH_BUS_OPTIONS
    )
    consumer = CompletionConsumer(sessions, dialect=engine.dialect.name, window_s=0.02)
    events = [
        _completed(i, "fake-small" if i % 3 else "fake-large", hit=i % 10 == 0, error=i % 7 == 0)
        for i in range(1, 121)
    ]
    try:
        # published before anyone listens: the backlog arrives at once, as after a restart
        await asyncio.gather(*(publish_event(bus, LLM_COMPLETED, e) for e in events))
        subscriptions = await consumer.subscribe(bus, concurrency=2)
        deadline = time.monotonic() + 60
        while (await _counts(sessions))["usage"] < len(events):
            assert time.monotonic() < deadline, await _counts(sessions)
            await asyncio.sleep(0.1)
        for subscription in subscriptions:
            await subscription.stop()

        profiled_events = [e for e in events if e.cache.outcome == common_pb2.CACHE_OUTCOME_MISS]
        expected = {
            "usage": 120,
            "spent": sum(e.cost.cost_nanousd for e in events),
            "requests": {
                "fake-small": sum(e.choice.model == "fake-small" for e in profiled_events),
                "fake-large": sum(e.choice.model == "fake-large" for e in profiled_events),
            },
            "profiled": sum(not e.error for e in profiled_events),
            "claims": 120 + len(profiled_events),
        }
        assert await _counts(sessions) == expected
        # far fewer transactions than events: a fetch's events share one
        assert max(consumer.commits.batches) > 10
        assert len(consumer.commits.batches) < len(events) / 10

        # JetStream redelivers a whole batch (its acks were lost): nothing counts twice, also
        # with an event twice inside one batch and new events beside old ones
        items = [completed_event(e, e.meta.event_id) for e in events]
        await consumer.write(items[:60])
        await consumer.write([items[5], items[5], *items[60:]])
        assert await _counts(sessions) == expected
        fresh = _completed(500, "fake-small")
        await consumer.write([items[0], completed_event(fresh, fresh.meta.event_id), items[1]])
        after = await _counts(sessions)
        assert after["usage"] == 121 and after["spent"] == expected["spent"] + 5_000
        small = expected["requests"]["fake-small"]  # type: ignore[index]
        assert after["requests"] == {"fake-small": small + 1, "fake-large": 36}

        # a malformed event is refused (redelivered, then dropped by the bus) and changes nothing
        with pytest.raises(InvalidArgumentError, match="not a valid"):
            await consumer(Envelope(LLM_COMPLETED, "bad-1", b"\xff\xff not protobuf"))
        assert await _counts(sessions) == after
    finally:
        await bus.close()
        await engine.dispose()


async def test_former_consumers_claims_are_honoured(db_url: str) -> None:
    """An event the former usage-only or profile-only consumer already applied is not
    applied again by the combined one (an upgrade mid-stream)."""
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    consumer = CompletionConsumer(sessions, dialect=engine.dialect.name, window_s=0)
    usage_done, profile_done = _completed(1, "m"), _completed(2, "m")
    try:
        first = await _counts(sessions)
        assert first["usage"] == 0
        async with sessions.begin() as session:
            now = datetime.now(UTC)
            for name, event in ((CONSUMER, usage_done), (COMPLETIONS_CONSUMER, profile_done)):
                session.add(
                    ProcessedEvent(consumer=name, event_id=event.meta.event_id, processed_at=now)
                )
        await consumer.write(
            [completed_event(e, e.meta.event_id) for e in (usage_done, profile_done)]
        )
        counts = await _counts(sessions)
        assert counts["usage"] == 1  # profile_done's usage only
        assert counts["requests"] == {"m": 1}  # usage_done's profile only
    finally:
        await engine.dispose()
