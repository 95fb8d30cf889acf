"""The migration chain and the database layer on SQLite and on PostgreSQL.

Every ``[postgres]`` test gets its own fresh database on 127.0.0.1:5432; see
``tests/support/databases.py`` for what happens when the server is unreachable.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, func, inspect, select
from sqlalchemy.exc import IntegrityError, StatementError

from llmproxy.platform.db import (
    Base,
    Conversation,
    ProcessedEvent,
    Turn,
    UsageRecord,
    alembic_config,
    create_engine,
    current_revision,
    downgrade,
    head_revision,
    migrate,
    normalise_url,
    session_factory,
    upgrade,
    wait_for_database,
)
from llmproxy.platform.errors import ConfigurationError, UnavailableError
from tests.support.databases import (
    BACKENDS,
    fresh_postgres_database,
    require_postgres,
    sqlite_url,
)

APP_TABLES = {
    "processed_events",
    "usage_records",
    "conversations",
    "turns",
    # gateway (0002)
    "tenants",
    "apps",
    "api_keys",
    "usage_limits",
    "limit_counters",
    "limit_reservations",  # (0008)
    # cache (0003)
    "cache_entries",
    # model selection (0004)
    "model_profiles",
    "profiled_requests",
    "router_policies",
    # scheduler (0005)
    "scheduler_jobs",
    "scheduler_predictions",
    "scheduler_executors",
    "scheduler_pool_configs",
    # optimizer (0006)
    "searches",
    "search_evaluations",
    "search_points",
    # whatsapp (0007)
    "whatsapp_users",
    "whatsapp_conversations",
    "whatsapp_messages",
    "whatsapp_outbound",
    "whatsapp_statuses",
}
T0 = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)


@pytest_asyncio.fixture(params=BACKENDS)
async def blank_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty, never migrated database of each backend."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    require_postgres()
    async with fresh_postgres_database() as url:
        yield url


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_creates_every_table_and_downgrade_removes_them(blank_db_url: str) -> None:
    assert await current_revision(blank_db_url) is None

    await upgrade(blank_db_url)
    assert await table_names(blank_db_url) == APP_TABLES | {"alembic_version"}
    assert await current_revision(blank_db_url) == head_revision() == "0008"

    await downgrade(blank_db_url)
    assert await table_names(blank_db_url) <= {"alembic_version"}
    assert await current_revision(blank_db_url) is None

    await upgrade(blank_db_url)
    assert await table_names(blank_db_url) == APP_TABLES | {"alembic_version"}


def _schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


async def test_models_match_the_migrated_schema(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_schema_differences)
    finally:
        await engine.dispose()
    assert differences == []


async def test_upgrade_is_a_no_op_at_head(db_url: str) -> None:
    await upgrade(db_url)
    assert await current_revision(db_url) == head_revision()


@pytest.mark.postgres
async def test_replicas_migrating_at_once_apply_the_chain_once() -> None:
    require_postgres()
    async with fresh_postgres_database() as url:
        ini = alembic_config(url).config_file_name
        assert ini is not None
        replicas = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "alembic",
                "-c",
                ini,
                "upgrade",
                "head",
                env=os.environ | {"DATABASE_URL": url},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        outputs = await asyncio.gather(*(replica.communicate() for replica in replicas))
        # without env.py's advisory lock, all but one fail on "relation already exists"
        assert [r.returncode for r in replicas] == [0, 0, 0], outputs
        assert await current_revision(url) == head_revision()


async def test_concurrent_upgrades_in_one_process_are_serialised(db_url: str) -> None:
    await downgrade(db_url)
    await asyncio.gather(*(upgrade(db_url) for _ in range(3)))
    assert await current_revision(db_url) == head_revision()


async def test_alembic_command_line_reads_database_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url(tmp_path)
    config = Config(str(Path(alembic_config(url).config_file_name or "")))
    config.attributes["configure_logger"] = False
    monkeypatch.setenv("DATABASE_URL", url)
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await table_names(url) == APP_TABLES | {"alembic_version"}


async def test_migrations_run_on_a_connection_the_caller_shares(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    config = alembic_config(url)
    engine = create_engine(url)

    def run_upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_upgrade)
    finally:
        await engine.dispose()
    assert await current_revision(url) == head_revision()


def test_alembic_config_keeps_a_percent_sign_in_the_password() -> None:
    config = alembic_config("postgresql://app:50%25off@db.internal/llmproxy")
    assert config.get_main_option("sqlalchemy.url") == (
        "postgresql+asyncpg://app:50%25off@db.internal/llmproxy"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5433/d", "postgresql+asyncpg://u:p@h:5433/d"),
        ("postgres://u:p@h/d", "postgresql+asyncpg://u:p@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgres://u@h/d?sslmode=require", "postgresql+asyncpg://u@h/d?ssl=require"),
        (
            "sqlite:////var/lib/llmproxy/db.sqlite",
            "sqlite+aiosqlite:////var/lib/llmproxy/db.sqlite",
        ),
        ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
    ],
)
def test_normalise_url_returns_the_async_driver_url(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize(
    "bad", ["mysql://x", "postgresql+psycopg2://u@h/d", "sqlite://", "sqlite:///:memory:", "nope"]
)
def test_normalise_url_rejects_other_forms_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        normalise_url(bad)
    assert "DATABASE_URL" in str(caught.value)
    assert "postgresql://" in str(caught.value)


def test_configuration_errors_never_show_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        normalise_url("mysql://admin:hunter2@db/x")
    assert "hunter2" not in str(caught.value)


async def test_wait_for_database_gives_up_on_a_closed_port() -> None:
    engine = create_engine("postgresql://postgres:secret@127.0.0.1:1/x")
    started = time.monotonic()
    try:
        with pytest.raises(UnavailableError) as caught:
            await wait_for_database(engine, retries=2, backoff=0.05)
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith("cannot reach the database at postgresql+asyncpg://postgres:")
    assert "127.0.0.1:1/x" in message and message.endswith("after 3 attempts")
    assert "secret" not in message


async def test_wait_for_database_returns_once_the_database_answers(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await wait_for_database(engine, retries=0, backoff=0)
    finally:
        await engine.dispose()


def usage_record(**overrides: object) -> UsageRecord:
    values: dict[str, object] = {
        "event_id": "evt-1",
        "request_id": "req-1",
        "tenant_id": "acme",
        "app_id": "support-bot",
        "user_id": None,
        "conversation_id": "conv-1",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1200,
        "cached_input_tokens": 1024,
        "output_tokens": 80,
        # above 2**31: a column of 32-bit integers would overflow here
        "cost_nanousd": 5_000_000_000,
        "reference_cost_nanousd": 9_000_000_000,
        "saved_nanousd": 4_000_000_000,
        "latency_ms": 812.5,
        "ttft_ms": None,
        "cache_outcome": "miss",
        "context_strategy": "token_budget",
        "tokens_sent": 1200,
        "tokens_full_history": 3400,
        "error": False,
        "created_at": T0,
    }
    return UsageRecord(**(values | overrides))


async def test_usage_records_round_trip_and_an_event_is_recorded_once(db_url: str) -> None:
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    try:
        async with sessions.begin() as session:
            session.add(usage_record())
        async with sessions() as session:
            row = (await session.scalars(select(UsageRecord))).one()
        assert (row.cost_nanousd, row.saved_nanousd) == (5_000_000_000, 4_000_000_000)
        assert (row.input_tokens, row.cached_input_tokens, row.ttft_ms) == (1200, 1024, None)
        assert row.created_at == T0 and row.created_at.tzinfo is not None
        assert len(row.id) == 36  # a uuid, generated when not given

        with pytest.raises(IntegrityError):
            async with sessions.begin() as session:
                session.add(usage_record(request_id="req-2"))
    finally:
        await engine.dispose()


def turn(seq: int, role: str, request_id: str | None = "req-1") -> Turn:
    return Turn(
        conversation_id="conv-1",
        seq=seq,
        role=role,
        content=f"{role} says {seq}",
        tokens=5,
        request_id=request_id,
        created_at=T0 + timedelta(seconds=seq),
        embedding=b"\x00\x01" if role == "user" else None,
    )


async def test_conversation_turns_round_trip_and_deleting_it_erases_them(db_url: str) -> None:
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    try:
        async with sessions.begin() as session:
            session.add(
                Conversation(
                    id="conv-1",
                    tenant_id="acme",
                    app_id="support-bot",
                    user_id="u-7",
                    created_at=T0,
                    updated_at=T0,
                )
            )
            await session.flush()
            session.add_all([turn(1, "user"), turn(2, "assistant")])

        async with sessions() as session:
            turns = (await session.scalars(select(Turn).order_by(Turn.seq))).all()
        assert [(t.seq, t.role, t.embedding) for t in turns] == [
            (1, "user", b"\x00\x01"),
            (2, "assistant", None),
        ]

        # a redelivered llm.completed must not append the same answer twice
        with pytest.raises(IntegrityError):
            async with sessions.begin() as session:
                session.add(turn(3, "assistant", request_id="req-1"))

        async with sessions.begin() as session:
            await session.execute(delete(Conversation).where(Conversation.id == "conv-1"))
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Turn)) == 0
    finally:
        await engine.dispose()


async def test_timestamps_come_back_aware_utc_on_sqlite(sqlite_db_url: str) -> None:
    engine = create_engine(sqlite_db_url)
    sessions = session_factory(engine)
    paris = timezone(timedelta(hours=1))
    handled_at = datetime(2025, 11, 22, 13, 30, tzinfo=paris)
    try:
        async with sessions.begin() as session:
            session.add(ProcessedEvent(consumer="profiler", event_id="e1", processed_at=handled_at))
        async with sessions() as session:
            row = await session.get(ProcessedEvent, ("profiler", "e1"))
        assert row is not None
        assert row.processed_at.utcoffset() == timedelta(0)
        assert row.processed_at == handled_at  # the same instant, now in UTC

        with pytest.raises(StatementError, match="naive datetime"):
            async with sessions.begin() as session:
                session.add(
                    ProcessedEvent(
                        consumer="profiler", event_id="e2", processed_at=datetime(2025, 1, 1)
                    )
                )
    finally:
        await engine.dispose()


def test_a_package_installed_without_the_migrations_says_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a plain `pip install .` looks like: the package without the repository around it
    monkeypatch.setattr(migrate, "_REPOSITORY_ROOT", tmp_path)
    with pytest.raises(ConfigurationError, match=r"pip install -e \."):
        alembic_config("sqlite:///x.db")
