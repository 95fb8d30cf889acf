"""Model profiles: the event handlers, the table adapter, ``profile.updated`` and GetProfiles.

``llm.completed`` adds a request to its model's profile (cache hits are skipped: no model
ran), a batch at a time (:func:`add_completions`, called by ``completions``, which claims
the batch's event ids in the same transaction); ``llm.feedback`` adds a verdict to the
profile of the model that answered, under the request's task category, exactly once
(``claim_event`` in the same transaction). Changed profiles are published as
``profile.updated`` at most once per ``publish_interval`` (every replica of the gateway
keeps the latest in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import structlog
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.platform.bus.port import Envelope, EventBus
from llmproxy.platform.bus.subjects import PROFILE_UPDATED
from llmproxy.platform.db.idempotency import claim_event
from llmproxy.platform.db.models import ModelProfileRow, ProfiledRequest
from llmproxy.platform.events import decode_event, new_event_meta, publish_event
from llmproxy.profiler.profiles import (
    Completion,
    Profile,
    apply_completions,
    apply_feedback,
    feedback_from_json,
    feedback_to_json,
    histogram_from_json,
    histogram_to_json,
    percentile,
    verdict_for,
)
from llmproxy.v1 import common_pb2, events_pb2

__all__ = [
    "COMPLETIONS_CONSUMER",
    "FEEDBACK_CONSUMER",
    "FeedbackProfiler",
    "ProfilePublisher",
    "add_completions",
    "completion_of",
    "load_profiles",
    "profile_message",
]

log = structlog.get_logger(__name__)

COMPLETIONS_CONSUMER = "profiler-profiles"
FEEDBACK_CONSUMER = "profiler-feedback"
_CACHE_HITS = (common_pb2.CACHE_OUTCOME_EXACT_HIT, common_pb2.CACHE_OUTCOME_SEMANTIC_HIT)
_KINDS = {
    events_pb2.FEEDBACK_KIND_RATING: "rating",
    events_pb2.FEEDBACK_KIND_WRONG: "wrong",
    events_pb2.FEEDBACK_KIND_ESCALATE: "escalate",
}

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


# -- rows <-> profiles ------------------------------------------------------------------


def _from_row(row: ModelProfileRow) -> Profile:
    return Profile(
        model=row.model,
        provider=row.provider,
        requests=row.requests,
        errors=row.errors,
        cost_nanousd_total=row.cost_nanousd_total,
        ttft=histogram_from_json(row.ttft_histogram),
        time_per_output_token=histogram_from_json(row.time_per_output_token_histogram),
        latency=histogram_from_json(row.latency_histogram),
        feedback=feedback_from_json(row.feedback),
    )


def _write(row: ModelProfileRow, profile: Profile, now: datetime) -> None:
    row.provider = profile.provider
    row.requests = profile.requests
    row.errors = profile.errors
    row.cost_nanousd_total = profile.cost_nanousd_total
    row.ttft_histogram = histogram_to_json(profile.ttft)
    row.time_per_output_token_histogram = histogram_to_json(profile.time_per_output_token)
    row.latency_histogram = histogram_to_json(profile.latency)
    row.feedback = feedback_to_json(profile.feedback)
    row.updated_at = now


async def _row_for(session: AsyncSession, model: str, now: datetime) -> ModelProfileRow:
    # FOR UPDATE serialises replicas adding to one profile on PostgreSQL (SQLite has one writer)
    row = await session.scalar(
        select(ModelProfileRow).where(ModelProfileRow.model == model).with_for_update()
    )
    if row is None:
        row = ModelProfileRow(model=model)
        _write(row, Profile(model=model), now)
        session.add(row)
    return row


def _duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def profile_message(profile: Profile, updated_at: datetime) -> events_pb2.ModelProfile:
    """The protobuf form of a profile (GetProfiles and ``profile.updated``)."""
    message = events_pb2.ModelProfile(
        provider=profile.provider,
        model=profile.model,
        error_rate=profile.error_rate,
        mean_cost_nanousd=profile.mean_cost_nanousd,
        requests=profile.requests,
        errors=profile.errors,
        ttft_p50=_duration(percentile(profile.ttft, 50)),
        ttft_p95=_duration(percentile(profile.ttft, 95)),
        ttft_p99=_duration(percentile(profile.ttft, 99)),
        time_per_output_token_p50=_duration(percentile(profile.time_per_output_token, 50)),
        time_per_output_token_p95=_duration(percentile(profile.time_per_output_token, 95)),
        time_per_output_token_p99=_duration(percentile(profile.time_per_output_token, 99)),
        latency_p50=_duration(percentile(profile.latency, 50)),
        latency_p95=_duration(percentile(profile.latency, 95)),
    )
    message.quality_by_category.update(profile.quality_by_category())
    message.feedback_by_category.update(profile.feedback_counts())
    message.updated_at.FromDatetime(updated_at)
    return message


async def load_profiles(
    sessions: async_sessionmaker[AsyncSession], models: Iterable[str] = ()
) -> list[events_pb2.ModelProfile]:
    """Every profile (or the named models'), as protobuf."""
    wanted = list(models)
    query = select(ModelProfileRow).order_by(ModelProfileRow.model)
    if wanted:
        query = query.where(ModelProfileRow.model.in_(wanted))
    async with sessions() as session:
        rows: list[ModelProfileRow] = list(await session.scalars(query))
    return [profile_message(_from_row(row), row.updated_at) for row in rows]


# -- handlers ---------------------------------------------------------------------------


class ProfilePublisher:
    """Collects changed models and publishes their profiles, at most once per interval."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        interval_s: float,
        source: str = "profiler",
    ) -> None:
        self._sessions = sessions
        self._bus = bus
        self._interval = interval_s
        self._source = source
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def changed(self, model: str) -> None:
        self._dirty.add(model)
        self._wake.set()

    async def flush(self) -> None:
        if not self._dirty:
            return
        models, self._dirty = sorted(self._dirty), set()
        try:
            profiles = await load_profiles(self._sessions, models)
            event = events_pb2.ProfileUpdated(meta=new_event_meta(self._source))
            event.profiles.extend(profiles)
            await publish_event(self._bus, PROFILE_UPDATED, event)
        except Exception:
            self._dirty.update(models)  # try again at the next interval
            log.exception("could not publish profile.updated")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


def completion_of(event: events_pb2.LlmCompleted) -> Completion | None:
    """What ``event`` teaches about its model; None when no model ran (a cache hit)."""
    model = event.choice.model
    if not model or event.cache.outcome in _CACHE_HITS:
        return None
    return Completion(
        model=model,
        provider=event.choice.provider,
        error=event.error,
        cost_nanousd=event.cost.cost_nanousd,
        output_tokens=event.usage.output_tokens,
        latency_s=event.latency.ToNanoseconds() / 1e9 if event.HasField("latency") else None,
        ttft_s=(
            event.time_to_first_token.ToNanoseconds() / 1e9
            if event.HasField("time_to_first_token")
            else None
        ),
        task_category=event.task_category,
    )


async def add_completions(
    session: AsyncSession,
    completions: Sequence[tuple[str, Completion]],
    now: datetime,
    *,
    dialect: str,
) -> set[str]:
    """Add ``(request_id, completion)`` pairs to their models' profiles, each model's row
    read and written once; remember each answered request's model (for its feedback).
    The models changed."""
    by_model: dict[str, list[Completion]] = defaultdict(list)
    for _, completion in completions:
        by_model[completion.model].append(completion)
    if not by_model:
        return set()
    # FOR UPDATE serialises replicas adding to one profile on PostgreSQL (SQLite has one
    # writer); in name order, so two replicas' batches never wait for each other in a cycle
    rows = {
        row.model: row
        for row in await session.scalars(
            select(ModelProfileRow)
            .where(ModelProfileRow.model.in_(sorted(by_model)))
            .order_by(ModelProfileRow.model)
            .with_for_update()
        )
    }
    for model, batch in by_model.items():
        row = rows.get(model)
        if row is None:
            row = ModelProfileRow(model=model)
            session.add(row)
            profile = Profile(model=model)
        else:
            profile = _from_row(row)
        _write(row, apply_completions(profile, batch), now)
    answered = {
        request_id: completion  # the last answer of a request wins, as merge() did
        for request_id, completion in completions
        if request_id and not completion.error
    }
    if answered:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(ProfiledRequest).values(
            [
                {
                    "request_id": request_id,
                    "model": completion.model,
                    "task_category": completion.task_category,
                    "created_at": now,
                }
                for request_id, completion in answered.items()
            ]
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["request_id"],
                set_={
                    "model": statement.excluded.model,
                    "task_category": statement.excluded.task_category,
                    "created_at": statement.excluded.created_at,
                },
            )
        )
    return set(by_model)


class FeedbackProfiler:
    """``llm.feedback`` -> the quality estimate of the model that answered (once per event)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: ProfilePublisher | None = None,
        clock: Clock = _now,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._now = clock

    async def __call__(self, envelope: Envelope) -> None:
        event = decode_event(envelope, events_pb2.LlmFeedback)
        verdict = verdict_for(_KINDS.get(event.kind, ""), event.rating)
        if verdict is None:
            return
        now = self._now()
        async with self._sessions.begin() as session:
            if not await claim_event(
                session, consumer=FEEDBACK_CONSUMER, event_id=envelope.event_id, now=now
            ):
                return
            answered = await session.get(ProfiledRequest, event.request_id)
            model = answered.model if answered is not None else event.model
            if not model:
                return  # feedback about a request no profile knows
            category = answered.task_category if answered is not None else ""
            row = await _row_for(session, model, now)
            _write(row, apply_feedback(_from_row(row), category, verdict), now)
        if self._publisher is not None:
            self._publisher.changed(model)
