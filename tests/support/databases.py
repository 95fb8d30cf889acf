"""Throwaway databases for tests: a SQLite file per test, a fresh PostgreSQL database per test.

PostgreSQL tests use the server on 127.0.0.1:5432 (trust auth) and isolate by creating a
uniquely named database that is dropped afterwards, so tests can run in parallel and a
failed run leaves at most an ``llmproxy_test_*`` database behind. Point them elsewhere
with ``LLMPROXY_TEST_POSTGRES_URL`` (a URL of the maintenance database).

When the server cannot be reached, PostgreSQL tests fail under CI (``CI=true``), where a
silent skip would hide a broken lane, and are skipped with the reason everywhere else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

__all__ = [
    "BACKENDS",
    "fresh_postgres_database",
    "in_ci",
    "postgres_admin_url",
    "postgres_available",
    "require_postgres",
    "sqlite_url",
]

#: parametrize a fixture or test with these to run it on each backend (test ids
#: ``[sqlite]``, ``[postgres]``); the PostgreSQL run carries the ``postgres`` marker
BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]

_DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_CONNECT_TIMEOUT_SECONDS = 5.0


def postgres_admin_url() -> URL:
    """The maintenance database tests create and drop their databases through."""
    url = make_url(os.environ.get("LLMPROXY_TEST_POSTGRES_URL", _DEFAULT_ADMIN_URL))
    # asyncpg takes libpq-style DSNs, without SQLAlchemy's "+driver" suffix
    return url.set(drivername="postgresql")


def _dsn(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def in_ci() -> bool:
    """True under a CI runner, which sets ``CI=true``."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


async def _probe() -> str | None:
    try:
        connection = await asyncpg.connect(
            _dsn(postgres_admin_url()), timeout=_CONNECT_TIMEOUT_SECONDS
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


@functools.cache
def _unavailable_reason() -> str | None:
    # its own thread and loop: callers may be sync tests or async fixtures mid-loop
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _probe()).result()


def postgres_available() -> bool:
    """Whether the test PostgreSQL server accepts connections (checked once per session)."""
    return _unavailable_reason() is None


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is unreachable, or fail it under CI."""
    reason = _unavailable_reason()
    if reason is None:
        return
    message = (
        f"PostgreSQL at {postgres_admin_url().render_as_string(hide_password=True)} "
        f"is unreachable ({reason}); start it with "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create an empty, uniquely named database; yield its URL; drop it afterwards.

    The URL is plain ``postgresql://`` (what an operator would write); the database is
    dropped even if a test left connections open.
    """
    admin = postgres_admin_url()
    name = f"llmproxy_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(_dsn(admin), timeout=_CONNECT_TIMEOUT_SECONDS)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield _dsn(admin.set(database=name))
    finally:
        connection = await asyncpg.connect(_dsn(admin), timeout=_CONNECT_TIMEOUT_SECONDS)
        try:
            # FORCE (PostgreSQL 13+): a pooled connection the test forgot must not keep it
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def sqlite_url(tmp_path: Path) -> str:
    """The URL of a (not yet existing) SQLite file under ``tmp_path``."""
    return f"sqlite:///{tmp_path / 'llmproxy.db'}"
