"""Database engines: one URL in, an async SQLAlchemy engine out.

Two backends share one schema: PostgreSQL through asyncpg (scale-out deployments) and
SQLite through aiosqlite (the embedded default, one file). Callers may write the URL the
way their platform prints it (``postgres://``, ``postgresql://``, ``sqlite:///path``);
:func:`normalise_url` turns it into the async driver URL once, so nothing else in the code
base needs to know which driver runs underneath.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from llmproxy.platform.errors import ConfigurationError, UnavailableError

__all__ = [
    "create_engine",
    "normalise_url",
    "redacted_url",
    "session_factory",
    "wait_for_database",
]

_log = logging.getLogger(__name__)

_EXPECTED_FORMS = (
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME (also postgres://, postgresql+asyncpg://) "
    "or sqlite:///PATH (also sqlite+aiosqlite:///PATH)"
)

#: drivername as written by the operator -> the async driver that serves it
_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}

#: how long a SQLite writer waits for another writer's lock before "database is locked";
#: every service of the embedded default writes to the same file, so waits are normal
_SQLITE_BUSY_TIMEOUT_MS = 15_000

#: a single backoff sleep never exceeds this, however many retries are asked for
_MAX_BACKOFF_SECONDS = 30.0


def _invalid(url: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"DATABASE_URL {redacted_url(url)!r} is not usable: {why}; expected {_EXPECTED_FORMS}"
    )


def redacted_url(url: str | URL) -> str:
    """``url`` with its password masked, for logs and error messages."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        # unparseable, so we cannot tell where a password would be: show the scheme only
        return str(url).split("://", 1)[0] + "://..."
    return parsed.render_as_string(hide_password=True)


def normalise_url(url: str) -> str:
    """The async-driver form of a ``DATABASE_URL``.

    Accepts ``postgresql://``, ``postgres://``, ``postgresql+asyncpg://``,
    ``sqlite:///path`` and ``sqlite+aiosqlite:///path``; returns ``postgresql+asyncpg://...``
    or ``sqlite+aiosqlite:///path`` with the password intact. libpq's ``sslmode`` query
    parameter is translated to asyncpg's ``ssl`` so URLs copied from hosting dashboards work.

    Raises:
        ConfigurationError: any other scheme, or an in-memory SQLite database.
    """
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        raise _invalid(url, "it is not a URL") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise _invalid(url, f"the scheme {parsed.drivername!r} is not supported")
    parsed = parsed.set(drivername=driver)
    if driver.startswith("sqlite"):
        if parsed.database in (None, "", ":memory:"):
            # each pooled connection would get its own empty database, so migrations
            # would run on one and the services would read another
            raise _invalid(url, "an in-memory SQLite database is private to one connection")
    elif "sslmode" in parsed.query and "ssl" not in parsed.query:
        query = dict(parsed.query)
        query["ssl"] = query.pop("sslmode")
        parsed = parsed.set(query=query)
    return parsed.render_as_string(hide_password=False)


def _enable_sqlite_safety(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked, per connection.
    # WAL lets readers run while one writer writes, which the embedded default needs
    # because every service shares one file.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url`` (any form :func:`normalise_url` accepts).

    SQLite connections enforce foreign keys, use WAL and wait for locks; PostgreSQL
    connections are pinged before use so a restarted server costs no failed request.
    """
    async_url = normalise_url(url)
    if async_url.startswith("sqlite"):
        engine = create_async_engine(async_url, echo=echo)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_safety)
        return engine
    return create_async_engine(async_url, echo=echo, pool_pre_ping=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    # the driver's own message says what went wrong; SQLAlchemy's wrapper adds SQL noise
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return str(inner).strip() or type(inner).__name__


async def wait_for_database(
    engine: AsyncEngine,
    *,
    retries: int = 5,
    backoff: float = 0.5,
    attempt_timeout: float = 5.0,
) -> None:
    """Return once ``engine`` answers ``SELECT 1``; give up after ``retries`` retries.

    Args:
        retries: attempts after the first one (``retries=2`` tries three times).
        backoff: seconds before the first retry; doubled before each next one
            (capped at 30 s).
        attempt_timeout: seconds one attempt may take; a silently dropped packet must not
            stall start-up for the driver's own, much longer, connect timeout.

    Raises:
        UnavailableError: the database did not answer; the message names the URL (without
            its password), the last reason and the number of attempts.
    """
    attempts = retries + 1
    delay = backoff
    reason = "not tried"
    for attempt in range(1, attempts + 1):
        try:
            async with asyncio.timeout(attempt_timeout):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            return
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            reason = _reason(exc)
            _log.warning(
                "database %s not reachable (attempt %d/%d): %s",
                redacted_url(engine.url),
                attempt,
                attempts,
                reason,
            )
        if attempt < attempts:
            await asyncio.sleep(min(delay, _MAX_BACKOFF_SECONDS))
            delay *= 2
    raise UnavailableError(
        f"cannot reach the database at {redacted_url(engine.url)}: {reason} "
        f"after {attempts} attempts"
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to ``engine``.

    Objects stay readable after commit (``expire_on_commit=False``): in async code a
    refresh-on-access would be an implicit query, which SQLAlchemy refuses outside a greenlet.
    """
    return async_sessionmaker(engine, expire_on_commit=False)
