"""Apply the alembic migration chain from code (service start-up, ``llmproxy up``, tests).

Alembic's commands are synchronous and ``migrations/env.py`` drives the async drivers with
``asyncio.run``, which refuses to start inside a running loop; so every command here runs
in a worker thread with its own loop. That works the same for asyncpg and aiosqlite, and
the caller's loop keeps serving while a migration runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from llmproxy.platform.db.engine import create_engine, normalise_url
from llmproxy.platform.errors import ConfigurationError

__all__ = ["alembic_config", "current_revision", "downgrade", "head_revision", "upgrade"]

#: services/platform/db/migrate.py -> the repository root, where alembic.ini lives
_REPOSITORY_ROOT = Path(__file__).resolve().parents[3]

#: alembic keeps the running command's context in a module-level global, so two commands in
#: one process must not overlap; across processes (replicas) env.py's advisory lock serializes
_ONE_COMMAND_AT_A_TIME = threading.Lock()


def _alembic_ini() -> Path:
    ini = _REPOSITORY_ROOT / "alembic.ini"
    if ini.is_file() and (_REPOSITORY_ROOT / "migrations" / "env.py").is_file():
        return ini
    # a plain `pip install .` copies the package but not the repository-level migrations
    raise ConfigurationError(
        f"the database migrations were not found next to the llmproxy package "
        f"(looked for {ini} and {_REPOSITORY_ROOT / 'migrations'}); install LLMProxy from "
        f"a source checkout with `pip install -e .`, or run `alembic upgrade head` "
        f"from the checkout with DATABASE_URL set"
    )


def _config_without_database() -> Config:
    ini = _alembic_ini()
    config = Config(str(ini))
    # absolute, so the commands work from any working directory
    config.set_main_option("script_location", str(ini.parent / "migrations"))
    return config


def alembic_config(url: str) -> Config:
    """An alembic Config for this repository's migrations, pointed at ``url``.

    ``url`` may take any form :func:`~llmproxy.platform.db.engine.normalise_url` accepts.
    The service's logging configuration is left alone.

    Raises:
        ConfigurationError: ``url`` is malformed, or the migrations are not installed.
    """
    config = _config_without_database()
    # Config options go through configparser interpolation: a '%' in a password must be doubled
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def _run_command(
    alembic_command: Callable[[Config, str], None], config: Config, revision: str
) -> None:
    # taken in the worker thread, so a waiting migration never blocks the caller's loop
    with _ONE_COMMAND_AT_A_TIME:
        alembic_command(config, revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` forward to ``revision`` (default: the newest)."""
    config = alembic_config(url)
    await asyncio.to_thread(_run_command, command.upgrade, config, revision)


async def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at ``url`` back to ``revision`` (default: no tables at all)."""
    config = alembic_config(url)
    await asyncio.to_thread(_run_command, command.downgrade, config, revision)


def head_revision() -> str:
    """The newest revision of the migration chain (what :func:`upgrade` goes to)."""
    head = ScriptDirectory.from_config(_config_without_database()).get_current_head()
    if head is None:
        raise ConfigurationError("the migration chain has no revisions")
    return head


def _read_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` when it was never migrated."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_read_revision)
    finally:
        await engine.dispose()
