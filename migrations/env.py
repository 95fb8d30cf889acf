"""Alembic environment: one migration chain for PostgreSQL (asyncpg) and SQLite (aiosqlite).

The database comes from, first match wins:

1. ``config.attributes["connection"]``: a sync ``Connection`` the caller already holds
   (alembic's connection-sharing recipe, e.g. inside ``await conn.run_sync(...)``);
2. the ``sqlalchemy.url`` option set on the Config (``llmproxy.platform.db.migrate`` does);
3. the ``DATABASE_URL`` environment variable (the ``alembic`` command line).

With a URL this module owns the connection: it runs the migrations on a fresh event loop
(``asyncio.run``), so it must be called from a thread without a running loop;
``llmproxy.platform.db.migrate`` runs alembic in a worker thread for that reason.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection

from llmproxy.platform.db.engine import create_engine, normalise_url
from llmproxy.platform.db.models import Base
from llmproxy.platform.errors import ConfigurationError

config = context.config
target_metadata = Base.metadata

#: PostgreSQL advisory lock key ("LLMP"): replicas starting together migrate one at a time;
#: the ones that waited then find the schema at head and do nothing
_MIGRATION_LOCK_KEY = 0x4C4C4D50

# Programmatic callers switch this off: fileConfig would replace the service's logging.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise ConfigurationError(
            "DATABASE_URL is not set: set it (postgresql://... or sqlite:///PATH) "
            "or pass the URL through llmproxy.platform.db.migrate"
        )
    return normalise_url(url)


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Suspend SQLite's foreign keys while migrating, then verify them.

    Batch mode rebuilds a table by copy-and-drop, and with foreign keys on, dropping a
    table runs its ON DELETE CASCADE: rebuilding ``conversations`` would delete every
    turn. The pragma only takes effect outside a transaction, hence the commits (no-ops
    for SQLite's driver, which opens its transaction lazily before the first write).
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
    finally:
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.commit()
    if violations:
        raise CommandError(f"the migration left rows that break foreign keys: {violations[:5]}")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # held until this transaction ends; PostgreSQL's DDL is transactional
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_owned)
    finally:
        await engine.dispose()


def _run_owned(connection: Connection) -> None:
    with _sqlite_foreign_keys_off(connection):
        _run(connection)


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against a live database."""
    shared = config.attributes.get("connection")
    if shared is not None:
        # the caller owns the connection and its transaction; SQLite callers who batch-alter
        # referenced tables must switch foreign keys off themselves
        _run(shared)
    else:
        asyncio.run(_run_with_own_engine(_database_url()))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
