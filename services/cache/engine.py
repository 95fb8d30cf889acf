"""The cache of one replica at work: keys a question, embeds it, asks the in-memory core,
persists answers and keeps every replica's memory in step through events.

* ``cache.stored`` (BROADCAST): an entry was persisted; every replica adds it.
* ``cache.invalidate`` (BROADCAST): entries were removed; every replica drops them.
* ``llm.completed`` (SHARED, one replica per event): store the answer the gateway got.
* ``llm.feedback`` (SHARED): "wrong" removes the answer everywhere.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.cache.keys import (
    CacheToken,
    PromptKind,
    ScopeKey,
    classify_prompt,
    exact_key,
    scope_digest,
    semantic_parts,
)
from llmproxy.cache.memory import CacheMemory, Entry, Hit, Lookup, Target, TargetKind
from llmproxy.cache.policy import (
    AppPolicy,
    Mode,
    StoreLimits,
    plan_lookup,
    resolve_ttl,
    why_not_store,
)
from llmproxy.cache.records import entry_from_record, entry_from_row, entry_to_record, entry_to_row
from llmproxy.platform.bus.port import Envelope, EventBus
from llmproxy.platform.db.idempotency import claim_event
from llmproxy.platform.db.models import CacheEntry
from llmproxy.platform.embeddings import TextEmbedder
from llmproxy.platform.errors import InvalidArgumentError
from llmproxy.platform.events import decode_event, new_event_meta, publish_event
from llmproxy.v1 import cache_pb2, common_pb2, events_pb2

__all__ = [
    "CACHE_STORED",
    "Answer",
    "Question",
    "ResponseCache",
    "StoreAnswer",
    "StoreOutcome",
]

log = structlog.get_logger(__name__)

#: an entry was persisted (in the CACHE stream next to cache.invalidate)
CACHE_STORED = "cache.stored"
STORE_CONSUMER = "cache-store"
FEEDBACK_CONSUMER = "cache-feedback"


@dataclass(frozen=True, slots=True)
class Question:
    scope: ScopeKey
    prompt: str
    mode: Mode | None = None
    threshold: float = 0.0
    no_store: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """What a lookup found: a hit, or a miss with the token to store the answer under."""

    hit: Hit | None
    bypassed: bool
    token: str


@dataclass(frozen=True, slots=True)
class StoreAnswer:
    tenant_id: str
    app_id: str
    conversation_id: str
    token: CacheToken
    prompt: str
    answer: str
    model: str
    usage: common_pb2.TokenUsage
    cost_nanousd: int
    request_id: str
    mode: Mode = Mode.SEMANTIC
    no_store: bool = False
    error: bool = False
    finish_reason: str = ""
    ttl: timedelta | None = None


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    stored: bool
    entry_id: str = ""
    reason: str = ""


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _where(target: Target):  # type: ignore[no-untyped-def]
    clause = CacheEntry.tenant_id == target.tenant_id
    match target.kind:
        case TargetKind.ENTRY:
            return clause & (CacheEntry.id == target.value)
        case TargetKind.KEY:
            return clause & (CacheEntry.key == target.value)
        case TargetKind.CONVERSATION:
            return clause & (CacheEntry.conversation_id == target.value)
        case TargetKind.APP:
            return clause & (CacheEntry.app_id == target.value)
        case TargetKind.TENANT:
            return clause


def target_from_event(event: events_pb2.CacheInvalidate) -> Target:
    which = event.WhichOneof("target")
    kinds = {
        "entry_id": TargetKind.ENTRY,
        "key": TargetKind.KEY,
        "conversation_id": TargetKind.CONVERSATION,
        "app_id": TargetKind.APP,
    }
    if which is None:
        return Target(event.tenant_id, TargetKind.TENANT)
    return Target(event.tenant_id, kinds[which], getattr(event, which))


def target_to_event(target: Target, source: str) -> events_pb2.CacheInvalidate:
    event = events_pb2.CacheInvalidate(meta=new_event_meta(source), tenant_id=target.tenant_id)
    field = {
        TargetKind.ENTRY: "entry_id",
        TargetKind.KEY: "key",
        TargetKind.CONVERSATION: "conversation_id",
        TargetKind.APP: "app_id",
    }.get(target.kind)
    if field is not None:
        setattr(event, field, target.value)
    return event


_DEFAULT_LIMITS = StoreLimits()


class ResponseCache:
    """One replica's cache; see the module docstring for the events it keeps in step by."""

    def __init__(
        self,
        memory: CacheMemory,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        embedder: TextEmbedder | None,
        *,
        apps: Callable[[str], AppPolicy] = lambda app_id: AppPolicy(),
        limits: StoreLimits = _DEFAULT_LIMITS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        source: str = "cache",
    ) -> None:
        self.memory = memory
        self._sessions = sessions
        self._bus = bus
        self._embedder = embedder
        self._apps = apps
        self._limits = limits
        self._now = clock
        self._source = source
        #: invalidations seen while rebuilding, applied again once the load is done
        self._rebuilding: list[Target] | None = None

    # -- requests ------------------------------------------------------------------------

    async def lookup(self, question: Question) -> Answer:
        scope_key = question.scope
        if not scope_key.tenant_id:
            raise InvalidArgumentError("key.scope.tenant_id is required", field="tenant_id")
        app = self._apps(scope_key.app_id)
        plan = plan_lookup(question.mode, question.threshold, app)
        if plan.mode is Mode.OFF or classify_prompt(question.prompt) is not PromptKind.TEXT:
            return Answer(None, bypassed=True, token="")
        scope = scope_digest(scope_key)
        key = exact_key(scope, question.prompt)
        head, tail = semantic_parts(question.prompt)
        vector = None
        # no neighbours, no embedding: a cold scope costs a hash, not a model run
        if plan.mode is Mode.SEMANTIC and self._embedder is not None:
            if self.memory.scope_size(scope) and not self.memory.has_key(key):
                vector = await self._embed(head)
        result = self.memory.lookup(
            Lookup(
                tenant_id=scope_key.tenant_id,
                scope=scope,
                key=key,
                prompt=question.prompt[: len(head) or None],
                tail=tail,
                mode=plan.mode,
                threshold=plan.threshold,
                vector=vector,
            ),
            self._now(),
        )
        for entry, similarity, mismatch in result.vetoed:
            log.debug(
                "cache guard vetoed a neighbour",
                entry_id=entry.id,
                similarity=round(similarity, 4),
                reason=mismatch.kind.value,
            )
        token = "" if question.no_store or result.hit else CacheToken(scope, key).encode()
        return Answer(result.hit, bypassed=False, token=token)

    async def store(self, request: StoreAnswer, *, event_id: str | None = None) -> StoreOutcome:
        """Persist an answer and tell every replica; idempotent on the key (first one wins).

        With ``event_id`` (the ``llm.completed`` consumer) the event is claimed in the same
        transaction, so a redelivered event stores nothing twice.
        """
        reason = why_not_store(
            mode=request.mode,
            no_store=request.no_store,
            prompt=request.prompt,
            answer=request.answer,
            error=request.error,
            finish_reason=request.finish_reason,
            limits=self._limits,
        )
        if reason is None and exact_key(request.token.scope, request.prompt) != request.token.key:
            reason = "the cache key is not this prompt's"
        if reason is not None:
            return StoreOutcome(False, reason=reason)
        now = self._now()
        head, tail = semantic_parts(request.prompt)
        vector = None if self._embedder is None else await self._embed(head)
        app = self._apps(request.app_id)
        entry = Entry(
            id=uuid.uuid4().hex,
            tenant_id=request.tenant_id,
            app_id=request.app_id,
            conversation_id=request.conversation_id,
            scope=request.token.scope,
            key=request.token.key,
            prompt=request.prompt[: len(head) or None],
            tail=tail,
            answer=request.answer,
            model=request.model,
            input_tokens=request.usage.input_tokens,
            cached_input_tokens=request.usage.cached_input_tokens,
            output_tokens=request.usage.output_tokens,
            cost_nanousd=request.cost_nanousd,
            request_id=request.request_id,
            created_at=now,
            expires_at=now + resolve_ttl(request.ttl, app),
            embedding=vector,
        )
        async with self._sessions.begin() as session:
            if event_id is not None and not await claim_event(
                session, consumer=STORE_CONSUMER, event_id=event_id, now=now
            ):
                return StoreOutcome(False, reason="already handled")
            row = entry_to_row(entry)
            values = {c.key: getattr(row, c.key) for c in CacheEntry.__table__.columns}
            statement = (
                _insert(session)(CacheEntry)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            inserted = bool(getattr(await session.execute(statement), "rowcount", 0))
        if not inserted:
            return StoreOutcome(False, reason="an answer to this prompt is already cached")
        self.memory.put(entry)
        event = cache_pb2.CacheStored(
            meta=new_event_meta(self._source), entry=entry_to_record(entry)
        )
        event.meta.event_id = f"cache-stored-{entry.id}"
        await publish_event(self._bus, CACHE_STORED, event)
        return StoreOutcome(True, entry_id=entry.id)

    async def invalidate(self, target: Target) -> int:
        """Remove the entries ``target`` names from the database and every replica."""
        if not target.tenant_id:
            raise InvalidArgumentError("tenant_id is required", field="tenant_id")
        async with self._sessions.begin() as session:
            result = await session.execute(delete(CacheEntry).where(_where(target)))
            removed = int(getattr(result, "rowcount", 0) or 0)
        removed = max(removed, len(self.memory.remove(target)))
        await publish_event(self._bus, "cache.invalidate", target_to_event(target, self._source))
        return removed

    async def sweep(self) -> int:
        """Drop expired entries here and in the database (any replica may do the latter)."""
        now = self._now()
        gone = self.memory.expire(now)
        async with self._sessions.begin() as session:
            await session.execute(delete(CacheEntry).where(CacheEntry.expires_at <= now))
        return len(gone)

    async def rebuild(self) -> int:
        """Load the newest live entries from the database (call after subscribing)."""
        self._rebuilding = []
        try:
            now = self._now()
            query = (
                select(CacheEntry)
                .where(CacheEntry.expires_at > now)
                .order_by(CacheEntry.created_at.desc())
                .limit(self.memory.max_entries)
            )
            async with self._sessions() as session:
                rows: list[CacheEntry] = list(await session.scalars(query))
            # oldest first: the newest are the last to be evicted
            self.memory.load([entry_from_row(row) for row in reversed(rows)])
            for target in self._rebuilding:
                self.memory.remove(target)
        finally:
            self._rebuilding = None
        return len(self.memory)

    # -- events --------------------------------------------------------------------------

    async def on_stored(self, envelope: Envelope) -> None:
        event = decode_event(envelope, cache_pb2.CacheStored)
        entry = entry_from_record(event.entry)
        if entry.id not in self.memory and not entry.expired(self._now()):
            self.memory.put(entry)

    async def on_invalidate(self, envelope: Envelope) -> None:
        target = target_from_event(decode_event(envelope, events_pb2.CacheInvalidate))
        self.memory.remove(target)
        if self._rebuilding is not None:
            self._rebuilding.append(target)

    async def on_completed(self, envelope: Envelope) -> None:
        """Store the answer of an ``llm.completed`` that carries a lookup's cache key."""
        event = decode_event(envelope, events_pb2.LlmCompleted)
        token = CacheToken.decode(event.cache_key)
        if token is None:
            return  # not looked up, a hit, or not to be stored
        prompt = event.user_prompt or next(
            (m.content for m in reversed(event.prompt) if m.role == common_pb2.ROLE_USER), ""
        )
        outcome = await self.store(
            StoreAnswer(
                tenant_id=event.scope.tenant_id,
                app_id=event.scope.app_id,
                conversation_id=event.scope.conversation_id,
                token=token,
                prompt=prompt,
                answer=event.answer,
                model=event.choice.model,
                usage=event.usage,
                cost_nanousd=event.cost.cost_nanousd,
                request_id=event.request_id,
                mode=_MODES.get(event.cache_policy.mode) or self._apps(event.scope.app_id).mode,
                no_store=event.cache_policy.no_store,
                error=event.error,
                finish_reason=event.finish_reason,
            ),
            event_id=envelope.event_id,
        )
        if not outcome.stored:
            log.debug("answer not cached", request_id=event.request_id, reason=outcome.reason)

    async def on_feedback(self, envelope: Envelope) -> None:
        """ "Wrong" removes the answer it names (by entry id, else by request) everywhere."""
        event = decode_event(envelope, events_pb2.LlmFeedback)
        tenant = event.scope.tenant_id
        if event.kind != events_pb2.FEEDBACK_KIND_WRONG or not tenant:
            return
        if event.cache_entry_id:
            entry_ids = [event.cache_entry_id]
        else:
            async with self._sessions() as session:
                entry_ids = list(
                    await session.scalars(
                        select(CacheEntry.id).where(
                            (CacheEntry.tenant_id == tenant)
                            & (CacheEntry.request_id == event.request_id)
                        )
                    )
                )
        for entry_id in entry_ids:
            await self.invalidate(Target(tenant, TargetKind.ENTRY, entry_id))

    async def _embed(self, text: str):  # type: ignore[no-untyped-def]
        assert self._embedder is not None
        vectors = await asyncio.to_thread(self._embedder.embed, [text])
        return vectors[0]


_MODES = {
    common_pb2.CACHE_MODE_UNSPECIFIED: None,
    common_pb2.CACHE_MODE_OFF: Mode.OFF,
    common_pb2.CACHE_MODE_EXACT: Mode.EXACT,
    common_pb2.CACHE_MODE_SEMANTIC: Mode.SEMANTIC,
}
