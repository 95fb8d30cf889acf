"""``llm.completed`` → usage rows and model profiles, in batches.

One durable consumer (``profiler-usage``) reads every completion once; ``concurrency``
subscriptions of it run at once and their events are group-committed
(:class:`~.batching.GroupCommit`): one transaction per batch claims every event id (one
INSERT .. ON CONFLICT DO NOTHING RETURNING), inserts the usage rows of the new ones (one
INSERT), and adds the new completions to their models' profiles, each model's row read and
written once per batch. A handler returns — and its message is acked — only after that
commit, so delivery stays at-least-once; the claims make a redelivered event (alone or in a
batch) change nothing. Usage and profile effects are claimed under their own names
(``profiler-usage``, ``profiler-profiles``, as when two consumers applied them), so events
one of the former consumers had already applied are not applied twice.

The former ``profiler-profiles`` JetStream consumer is no longer read; an operator may
remove it (``nats consumer rm LLM profiler-profiles``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.platform.bus.jetstream import JetStreamOptions
from llmproxy.platform.bus.port import Envelope, EventBus, Subscription
from llmproxy.platform.bus.subjects import LLM_COMPLETED
from llmproxy.platform.db.models import ProcessedEvent
from llmproxy.platform.events import decode_event
from llmproxy.profiler.batching import GroupCommit
from llmproxy.profiler.profiles import Completion
from llmproxy.profiler.profiling import (
    COMPLETIONS_CONSUMER,
    ProfilePublisher,
    add_completions,
    completion_of,
)
from llmproxy.profiler.usage import CONSUMER, insert_usage, usage_values
from llmproxy.v1 import events_pb2

__all__ = [
    "BATCH_BUS_OPTIONS",
    "BUS_CONSUMER",
    "CompletedEvent",
    "CompletionConsumer",
    "completed_event",
]

#: the JetStream consumer (the former usage consumer's durable name: no replay at upgrade)
BUS_CONSUMER = CONSUMER
#: the bus the consumer reads from: one pull request fetches up to 128 events, whose
#: handlers run at once and so are committed together
BATCH_BUS_OPTIONS = JetStreamOptions(fetch_batch=128, handle_fetch_concurrently=True)


@dataclass(frozen=True, slots=True)
class CompletedEvent:
    """One ``llm.completed`` as the batch writer needs it."""

    event_id: str
    request_id: str
    usage: dict[str, Any]
    #: None: no model ran (a cache hit), nothing for a profile
    completion: Completion | None


def completed_event(event: events_pb2.LlmCompleted, event_id: str) -> CompletedEvent:
    return CompletedEvent(
        event_id=event_id,
        request_id=event.request_id,
        usage=usage_values(event, event_id),
        completion=completion_of(event),
    )


def _now() -> datetime:
    return datetime.now(UTC)


async def claim_events(
    session: AsyncSession, claims: Sequence[tuple[str, str]], now: datetime, *, dialect: str
) -> set[tuple[str, str]]:
    """Record ``(consumer, event_id)`` pairs; the ones that were new (one statement)."""
    if not claims:
        return set()
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(ProcessedEvent)
        .values([{"consumer": c, "event_id": e, "processed_at": now} for c, e in claims])
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(ProcessedEvent.consumer, ProcessedEvent.event_id)
    )
    return {(row.consumer, row.event_id) for row in await session.execute(statement)}


class CompletionConsumer:
    """The ``llm.completed`` handler: usage + profiles, group-committed."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: ProfilePublisher | None = None,
        *,
        dialect: str,
        clock: Callable[[], datetime] = _now,
        window_s: float = 0.005,
        max_batch: int = 256,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._dialect = dialect
        self._now = clock
        self.commits: GroupCommit[CompletedEvent] = GroupCommit(
            self.write, window_s=window_s, max_batch=max_batch
        )

    async def __call__(self, envelope: Envelope) -> None:
        event = decode_event(envelope, events_pb2.LlmCompleted)
        await self.commits.submit(completed_event(event, envelope.event_id))

    async def write(self, batch: Sequence[CompletedEvent]) -> None:
        """Apply ``batch`` in one transaction; events already applied change nothing."""
        unique = {item.event_id: item for item in batch}  # a redelivery inside one batch
        claims = [(CONSUMER, event_id) for event_id in unique]
        claims += [
            (COMPLETIONS_CONSUMER, event_id)
            for event_id, item in unique.items()
            if item.completion is not None
        ]
        now = self._now()
        changed: set[str] = set()
        async with self._sessions.begin() as session:
            new = await claim_events(session, claims, now, dialect=self._dialect)
            await insert_usage(
                session,
                [item.usage for event_id, item in unique.items() if (CONSUMER, event_id) in new],
            )
            completions = [
                (item.request_id, item.completion)
                for event_id, item in unique.items()
                if item.completion is not None and (COMPLETIONS_CONSUMER, event_id) in new
            ]
            changed = await add_completions(session, completions, now, dialect=self._dialect)
        if self._publisher is not None:
            for model in changed:
                self._publisher.changed(model)

    async def subscribe(
        self, bus: EventBus, *, concurrency: int, consumer_name: str = BUS_CONSUMER
    ) -> list[Subscription]:
        """``concurrency`` subscriptions of the shared consumer (their events make the
        batches); the subscriptions, to stop. On a bus made with
        :data:`BATCH_BUS_OPTIONS` each fetch brings up to a batch of events at once."""
        return [
            await bus.subscribe(LLM_COMPLETED, self, consumer=consumer_name)
            for _ in range(concurrency)
        ]
