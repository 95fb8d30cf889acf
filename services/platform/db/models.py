"""The tables every service shares, as typed SQLAlchemy models.

The schema itself is owned by the alembic chain in ``migrations/``; these models must
match it (``tests/integration/test_migrations.py`` compares them on both backends). Only
portable column types are used so one chain serves PostgreSQL and SQLite.

Models carry no timestamp defaults: adapters take the time from an injected ``Clock``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from llmproxy.platform.db.types import UtcDateTime

__all__ = [
    "ApiKey",
    "Application",
    "Base",
    "CacheEntry",
    "Conversation",
    "LimitCounter",
    "LimitReservation",
    "ModelProfileRow",
    "ProcessedEvent",
    "ProfiledRequest",
    "RouterPolicyRow",
    "SchedulerExecutor",
    "SchedulerJob",
    "SchedulerPoolConfig",
    "SchedulerPrediction",
    "Search",
    "SearchEvaluation",
    "SearchPoint",
    "Tenant",
    "Turn",
    "UsageLimit",
    "UsageRecord",
    "WhatsAppConversation",
    "WhatsAppMessage",
    "WhatsAppOutbound",
    "WhatsAppStatus",
    "WhatsAppUser",
]

#: deterministic constraint names, so a later migration can drop or alter a constraint by
#: name on both backends (SQLite and PostgreSQL would otherwise invent different ones)
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets 64 bits
_AutoId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every LLMProxy table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime()}


class ProcessedEvent(Base):
    """An event a consumer has handled, written in the same transaction as its effects.

    A redelivered event finds its row and is acked without being applied twice.
    """

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String, primary_key=True)
    event_id: Mapped[str] = mapped_column(String, primary_key=True)
    processed_at: Mapped[datetime]


class UsageRecord(Base):
    """One LLM call as the profiler recorded it from ``llm.completed``: tokens, money, timing."""

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("event_id"),
        # spend per tenant over a time window is the profiler's most frequent question
        Index(None, "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True, default=lambda: str(uuid.uuid4()))
    event_id: Mapped[str] = mapped_column(String)
    request_id: Mapped[str] = mapped_column(String, index=True)
    tenant_id: Mapped[str | None] = mapped_column(String)
    app_id: Mapped[str | None] = mapped_column(String)
    user_id: Mapped[str | None] = mapped_column(String)
    conversation_id: Mapped[str | None] = mapped_column(String)
    provider: Mapped[str] = mapped_column(String)
    model: Mapped[str] = mapped_column(String)
    input_tokens: Mapped[int] = mapped_column(Integer)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer)
    # money in nano-USD: exact integer sums, and 64 bits because $2.15 overflows 32
    cost_nanousd: Mapped[int] = mapped_column(BigInteger)
    reference_cost_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    saved_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    cache_outcome: Mapped[str] = mapped_column(String)
    context_strategy: Mapped[str] = mapped_column(String)
    tokens_sent: Mapped[int] = mapped_column(Integer)
    tokens_full_history: Mapped[int] = mapped_column(Integer)
    error: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class Conversation(Base):
    """A conversation's header; its turns live in :class:`Turn`.

    Ids are unique across tenants, but every query still filters on ``tenant_id`` so one
    tenant can never read another's conversation by guessing an id.
    """

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String, index=True)
    app_id: Mapped[str] = mapped_column(String)
    user_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: turns before this instant are kept for the record but no longer sent
    reset_at: Mapped[datetime | None]
    summary: Mapped[str | None] = mapped_column(Text)
    #: the summary covers turns with ``seq <= summary_upto_seq``
    summary_upto_seq: Mapped[int | None] = mapped_column(Integer)

    # lazy="raise": an implicit load would be a hidden query, which async sessions refuse;
    # passive_deletes: the database's ON DELETE CASCADE removes the turns, unloaded
    turns: Mapped[list[Turn]] = relationship(
        order_by="Turn.seq",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )


class Turn(Base):
    """One message of a conversation, in ``seq`` order."""

    __tablename__ = "turns"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        # appending the same request again (a redelivered event) must add nothing;
        # turns without a request_id are not deduplicated (NULLs are distinct)
        UniqueConstraint("conversation_id", "request_id", "role"),
    )

    id: Mapped[int] = mapped_column(_AutoId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String)
    content: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]
    #: float32 vector bytes, for the context service's ``relevant`` strategy
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)


# =======================================================================================
# Gateway: tenants, apps, API keys, usage limits and their counters (migration 0002).
# Owned by the gateway; the admin CLI writes them, the gateway reads keys and limits and
# reserves against the counters.
# =======================================================================================


class Tenant(Base):
    """A customer of LLMProxy; every key, app, limit and usage row belongs to one."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    #: savings are measured against this model (the catalog's reference when NULL)
    reference_model: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]


class Application(Base):
    """An application of a tenant; keys are issued to an app."""

    __tablename__ = "apps"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime]


class ApiKey(Base):
    """An API key: only its hash is stored; the plaintext is shown once, at creation."""

    __tablename__ = "api_keys"

    #: the public part of the key (``llp_<id>_<secret>``), used to find the row
    id: Mapped[str] = mapped_column(String, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    app_id: Mapped[str] = mapped_column(String, ForeignKey("apps.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String)
    #: hex SHA-256 of the secret part (see ``llmproxy.gateway.keys``)
    secret_hash: Mapped[str] = mapped_column(String)
    #: space-separated scopes, e.g. "chat usage"
    scopes: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class UsageLimit(Base):
    """A budget or rate limit: at most ``amount`` of ``metric`` per ``window``.

    It applies to the tenant, or narrower to one app, one key, or end users (``user_id``:
    one user, or ``*`` for each user separately).
    """

    __tablename__ = "usage_limits"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    app_id: Mapped[str | None] = mapped_column(String)
    key_id: Mapped[str | None] = mapped_column(String)
    user_id: Mapped[str | None] = mapped_column(String)
    #: "cost_nanousd" | "requests" | "tokens"
    metric: Mapped[str] = mapped_column(String)
    #: "minute" | "hour" | "day" | "month"
    window: Mapped[str] = mapped_column(String)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class LimitCounter(Base):
    """What one limit has used and holds reserved in one window (per end user if per-user).

    Reservations are conditional updates of this row, so concurrent gateways never admit
    more than the limit between them.
    """

    __tablename__ = "limit_counters"

    limit_id: Mapped[str] = mapped_column(
        String, ForeignKey("usage_limits.id", ondelete="CASCADE"), primary_key=True
    )
    #: the end user for per-user limits, else ""
    subject: Mapped[str] = mapped_column(String, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger)


class LimitReservation(Base):
    """One request's open reservation: what it holds on which counters, until when.

    Settling deletes the row in the same transaction that moves the amounts. A gateway
    that dies mid-request never settles: once ``expires_at`` passes, any replica's
    sweeper deletes the row and releases what it held, exactly once (whoever deletes the
    row releases it).
    """

    __tablename__ = "limit_reservations"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    #: [{"limit_id", "subject", "window_start" (ISO 8601), "amount"}, ...]
    claims: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


# =======================================================================================
# Cache: persisted response-cache entries (migration 0003). Owned by the cache service;
# every replica loads them at start and keeps its in-memory index in sync by events.
# =======================================================================================


class CacheEntry(Base):
    """One cached answer, scoped by tenant, app, model class, system prompt and context.

    ``scope`` and ``key`` are SHA-256 digests (see ``llmproxy.cache.keys``); ``key`` is
    unique, so two answers to one question are never both kept (the first one wins).
    """

    __tablename__ = "cache_entries"
    __table_args__ = (
        UniqueConstraint("key"),
        # invalidation by app or by conversation always names the tenant too
        Index(None, "tenant_id", "app_id"),
        Index(None, "tenant_id", "conversation_id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String)
    app_id: Mapped[str] = mapped_column(String)
    conversation_id: Mapped[str | None] = mapped_column(String)
    scope: Mapped[str] = mapped_column(String)
    key: Mapped[str] = mapped_column(String)
    #: the head of the prompt as the caller wrote it (what the guard and the reply see)
    prompt: Mapped[str] = mapped_column(Text)
    #: digest of the normalised prompt beyond the embedded head ("" when there is none)
    tail: Mapped[str] = mapped_column(String)
    answer: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String)
    input_tokens: Mapped[int] = mapped_column(Integer)
    cached_input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cost_nanousd: Mapped[int] = mapped_column(BigInteger)
    #: the request whose answer this is (``llm.feedback`` names requests)
    request_id: Mapped[str] = mapped_column(String, index=True)
    #: float32 vector bytes of the prompt's head; NULL when stored without one
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: the embedding model's id: vectors of another model are not comparable
    embedding_model: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


# =======================================================================================
# Model selection: per-model profiles and versioned router policies (migration 0004).
# Owned by the profiler (profiles) and the optimizer (router policies).
# =======================================================================================
class ModelProfileRow(Base):
    """What the profiler learned about one model from ``llm.completed`` and ``llm.feedback``.

    Latencies are log-bucket histograms (JSON ``{bucket: count}``, see
    ``llmproxy.profiler.profiles``) so replicas add to them and percentiles come out of them;
    ``feedback`` is JSON ``{category: [good, total]}`` ("" = every category).
    """

    __tablename__ = "model_profiles"

    model: Mapped[str] = mapped_column(String, primary_key=True)
    provider: Mapped[str] = mapped_column(String)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    cost_nanousd_total: Mapped[int] = mapped_column(BigInteger)
    ttft_histogram: Mapped[str] = mapped_column(Text)
    time_per_output_token_histogram: Mapped[str] = mapped_column(Text)
    latency_histogram: Mapped[str] = mapped_column(Text)
    feedback: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class ProfiledRequest(Base):
    """Model and task category of an answered request, so its later feedback is attributed."""

    __tablename__ = "profiled_requests"

    request_id: Mapped[str] = mapped_column(String, primary_key=True)
    model: Mapped[str] = mapped_column(String)
    task_category: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(index=True)


class RouterPolicyRow(Base):
    """One trained router version; at most one is active (the gateway uses that one).

    ``artifact`` is the router's ``.npz`` document (no pickles); list columns are JSON text.
    """

    __tablename__ = "router_policies"

    version: Mapped[str] = mapped_column(String, primary_key=True)
    candidate_models: Mapped[str] = mapped_column(Text)
    threshold: Mapped[float] = mapped_column(Float)
    embedding_model: Mapped[str] = mapped_column(String)
    trained_on: Mapped[str] = mapped_column(Text)
    metrics: Mapped[str] = mapped_column(Text)
    artifact: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(index=True)
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]


# --- MODEL SELECTION models go here; MODEL SELECTION END ---


# =======================================================================================
# Scheduler: jobs, their predictions and executors (migration 0005). Owned by the scheduler.
# =======================================================================================
class SchedulerJob(Base):
    """One job of the live scheduler, in its latest state (owned by the scheduler).

    ``seq`` is the submission order (FIFO inside a WFQ class, kept across restarts);
    ``features`` is JSON text; ``gpu_indices`` a comma-separated list; times are wall clock.
    """

    __tablename__ = "scheduler_jobs"
    __table_args__ = (
        UniqueConstraint("seq"),
        UniqueConstraint("idempotency_key"),
        Index(None, "state", "pool"),
        Index(None, "owner"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    pool: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    state: Mapped[str] = mapped_column(String)
    owner: Mapped[str] = mapped_column(String)
    demand: Mapped[int] = mapped_column(Integer)
    #: believed size, GPU-seconds (given or estimated)
    size: Mapped[float] = mapped_column(Float)
    size_uncertainty: Mapped[float] = mapped_column(Float)
    size_estimated: Mapped[bool]
    features: Mapped[str] = mapped_column(Text)
    command: Mapped[str] = mapped_column(Text)
    #: NULL when the submitter gave none (unique otherwise)
    idempotency_key: Mapped[str | None] = mapped_column(String)
    class_index: Mapped[int] = mapped_column(Integer)
    #: WFQ virtual start and finish tags (waiting jobs start in finish-tag order)
    tag_start: Mapped[float] = mapped_column(Float)
    tag_finish: Mapped[float] = mapped_column(Float)
    submitted_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    run_started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    attained: Mapped[float] = mapped_column(Float)
    #: work of the final run measured at completion (the actual size), GPU-seconds
    actual_size: Mapped[float | None] = mapped_column(Float)
    executor_id: Mapped[str] = mapped_column(String)
    gpu_indices: Mapped[str] = mapped_column(String)
    restarts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    predicted_start: Mapped[datetime | None]
    predicted_completion: Mapped[datetime | None]
    predicted_at: Mapped[datetime | None]
    prediction_reason: Mapped[str | None] = mapped_column(String)
    first_predicted_start: Mapped[datetime | None]
    first_predicted_completion: Mapped[datetime | None]
    first_predicted_at: Mapped[datetime | None]


class SchedulerPrediction(Base):
    """Every prediction a job was given, with the reason (the history behind its error)."""

    __tablename__ = "scheduler_predictions"

    id: Mapped[int] = mapped_column(_AutoId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("scheduler_jobs.id"), index=True)
    made_at: Mapped[datetime]
    predicted_start: Mapped[datetime | None]
    predicted_completion: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(String)


class SchedulerExecutor(Base):
    """An agent that owns GPUs (or slots) of a pool and runs the jobs it is assigned."""

    __tablename__ = "scheduler_executors"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    pool: Mapped[str] = mapped_column(String, index=True)
    gpus: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String)
    alive: Mapped[bool]
    registered_at: Mapped[datetime]
    last_heartbeat: Mapped[datetime]


class SchedulerPoolConfig(Base):
    """The WFQ configuration in force for a pool (JSON text), as last applied."""

    __tablename__ = "scheduler_pool_configs"

    pool: Mapped[str] = mapped_column(String, primary_key=True)
    config: Mapped[str] = mapped_column(Text)
    policy_id: Mapped[str] = mapped_column(String)
    updated_at: Mapped[datetime]


# --- SCHEDULER models go here; SCHEDULER END ---


# =======================================================================================
# Optimizer: searches, evaluated candidates and Pareto fronts (migration 0006).
# Owned by the optimizer.
# =======================================================================================
class Search(Base):
    """One PCS Pareto search over WFQ configurations (owned by the optimizer).

    ``workload`` and ``objectives`` are JSON text; the search's candidates are in
    ``search_points``, their scores in ``search_evaluations`` (shared by workload)."""

    __tablename__ = "searches"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    #: "running" | "completed" | "failed"
    state: Mapped[str] = mapped_column(String)
    #: "nsga2" | "random"
    algorithm: Mapped[str] = mapped_column(String)
    #: "compact" | "full"
    space: Mapped[str] = mapped_column(String)
    objectives: Mapped[str] = mapped_column(Text)
    workload: Mapped[str] = mapped_column(Text)
    workload_key: Mapped[str] = mapped_column(String, index=True)
    population: Mapped[int] = mapped_column(Integer)
    generations: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    #: generations finished so far
    generation: Mapped[int] = mapped_column(Integer)
    #: distinct configurations scored for this search (including ones scored before)
    evaluated: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class SearchEvaluation(Base):
    """The simulated metrics of one configuration on one workload: computed once, reused by
    every search (and replica) that asks for the same configuration hash."""

    __tablename__ = "search_evaluations"

    workload_key: Mapped[str] = mapped_column(String, primary_key=True)
    config_hash: Mapped[str] = mapped_column(String, primary_key=True)
    config: Mapped[str] = mapped_column(Text)
    metrics: Mapped[str] = mapped_column(Text)
    #: the replica (instance id) or process that ran the simulation
    evaluated_by: Mapped[str] = mapped_column(String)
    wall_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]


class SearchPoint(Base):
    """A configuration a search evaluated, and its place on the final front."""

    __tablename__ = "search_points"

    search_id: Mapped[str] = mapped_column(
        String, ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True
    )
    config_hash: Mapped[str] = mapped_column(String, primary_key=True)
    #: the generation that first asked for it
    generation: Mapped[int] = mapped_column(Integer)
    #: 1 when on the final Pareto front
    on_front: Mapped[int] = mapped_column(Integer)
    #: the presets this point is, comma-separated ("pred", "bal,jct"), else NULL
    preset: Mapped[str | None] = mapped_column(String)


# --- OPTIMIZER models go here; OPTIMIZER END ---


# =======================================================================================
# WhatsApp: channel users and processed messages (migration 0007). Owned by whatsapp.
# =======================================================================================
class WhatsAppUser(Base):
    """A WhatsApp user as the channel knows them: the tenant end user behind a phone number,
    their current conversation, their preferences and their limit counters."""

    __tablename__ = "whatsapp_users"

    wa_id: Mapped[str] = mapped_column(String, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String)
    #: a pseudonym, not the phone number: it is what the gateway, cache and ledger see
    user_id: Mapped[str] = mapped_column(String, unique=True)
    #: the conversation new questions go to (NULL: the next question starts one)
    conversation_id: Mapped[str | None] = mapped_column(String)
    #: "cheap" | "balanced" | "best"
    mode: Mapped[str] = mapped_column(String)
    #: "" = automatic selection
    pinned_model: Mapped[str] = mapped_column(String)
    #: "" = the context service's default; else full | last_k | token_budget | ...
    context_strategy: Mapped[str] = mapped_column(String)
    #: k of last_k / relevant, or the token budget (0: the service's default)
    context_param: Mapped[int] = mapped_column(Integer)
    cache_enabled: Mapped[bool]
    #: Meta's timestamp of the user's latest message (opens the 24-hour window)
    last_inbound_at: Mapped[datetime | None]
    rate_window_start: Mapped[datetime | None]
    rate_count: Mapped[int] = mapped_column(Integer)
    #: the UTC day (YYYY-MM-DD) ``spend_nanousd`` counts
    spend_day: Mapped[str] = mapped_column(String)
    spend_nanousd: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WhatsAppConversation(Base):
    """Every conversation a WhatsApp user has had (``/delete`` erases each of them)."""

    __tablename__ = "whatsapp_conversations"

    conversation_id: Mapped[str] = mapped_column(String, primary_key=True)
    wa_id: Mapped[str] = mapped_column(String, index=True)
    created_at: Mapped[datetime]


class WhatsAppMessage(Base):
    """An inbound message: the channel's durable inbox and its de-duplication record.

    The webhook writes the row before answering Meta (``message_id`` is unique, so a
    redelivery adds nothing); workers claim rows with a lease, keep the decided reply so a
    retry resends it rather than asking again, and mark them done. ``/delete`` blanks the
    personal columns but keeps the id, so a late redelivery is still recognised.
    """

    __tablename__ = "whatsapp_messages"
    __table_args__ = (
        UniqueConstraint("message_id"),
        Index(None, "state", "seq"),
        Index(None, "wa_id"),
    )

    seq: Mapped[int] = mapped_column(_AutoId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String)
    wa_id: Mapped[str] = mapped_column(String)
    #: Meta's message type: text, image, audio, ...
    kind: Mapped[str] = mapped_column(String)
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime]
    received_at: Mapped[datetime]
    #: "pending" | "processing" | "done"
    state: Mapped[str] = mapped_column(String)
    #: how it ended: answered, command, stale, rate_limited, failed, ...
    outcome: Mapped[str | None] = mapped_column(String)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String)
    lease_until: Mapped[datetime | None]
    #: the reply decided for it (NULL until decided)
    reply: Mapped[str | None] = mapped_column(Text)
    parts_sent: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String)
    finished_at: Mapped[datetime | None]


class WhatsAppOutbound(Base):
    """A message the channel sent, by the id the Graph API gave it (statuses refer to it)."""

    __tablename__ = "whatsapp_outbound"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    #: the inbound message it answers (NULL for operator sends)
    inbound_seq: Mapped[int | None] = mapped_column(BigInteger, index=True)
    #: "text" | "notice" | "template"
    kind: Mapped[str] = mapped_column(String)
    sent_at: Mapped[datetime]


class WhatsAppStatus(Base):
    """A delivery status callback (sent, delivered, read, failed), recorded once."""

    __tablename__ = "whatsapp_statuses"
    __table_args__ = (UniqueConstraint("message_id", "status"),)

    id: Mapped[int] = mapped_column(_AutoId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(String)
    recorded_at: Mapped[datetime]


# --- WHATSAPP models go here; WHATSAPP END ---
