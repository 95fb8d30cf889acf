"""pytest fixtures for database-backed tests; ``tests/conftest.py`` star-imports them.

Each fixture yields a database URL (the form an operator writes, e.g. ``postgresql://``
or ``sqlite:///``) already migrated to head and private to the test. Build engines with
``llmproxy.platform.db.create_engine(url)`` and dispose of them in the test.

* ``sqlite_db_url``: a SQLite file under ``tmp_path``.
* ``postgres_db_url``: a fresh PostgreSQL database, dropped afterwards. Mark tests that
  use it ``@pytest.mark.postgres`` so ``-m "not postgres"`` deselects them.
* ``db_url``: runs the test twice, once per backend (the PostgreSQL run is marked
  ``postgres`` already); for contract tests of repositories.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio

from llmproxy.platform.db import upgrade
from tests.support.databases import (
    BACKENDS,
    fresh_postgres_database,
    require_postgres,
    sqlite_url,
)

__all__ = ["db_url", "postgres_db_url", "sqlite_db_url"]


@asynccontextmanager
async def migrated_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A private database of ``backend`` ("sqlite" or "postgres") migrated to head."""
    if backend == "sqlite":
        url = sqlite_url(tmp_path)
        await upgrade(url)
        yield url
        return
    require_postgres()
    async with fresh_postgres_database() as url:
        await upgrade(url)
        yield url


@pytest_asyncio.fixture
async def sqlite_db_url(tmp_path: Path) -> AsyncIterator[str]:
    """A SQLite file database migrated to head."""
    async with migrated_database("sqlite", tmp_path) as url:
        yield url


@pytest_asyncio.fixture
async def postgres_db_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh PostgreSQL database migrated to head; skipped (failed under CI) if unreachable."""
    async with migrated_database("postgres", tmp_path) as url:
        yield url


@pytest_asyncio.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database of each backend in turn (test ids ``[sqlite]``, ``[postgres]``)."""
    async with migrated_database(request.param, tmp_path) as url:
        yield url
