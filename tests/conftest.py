"""Fixtures shared by every test lane. One section per dependency; keep each small."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.nats_server import NatsServer

# ---------------------------------------------------------------------------------------
# NATS JetStream (event bus)
# ---------------------------------------------------------------------------------------


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A fresh nats-server with JetStream for one test (about 50 ms to start); always stopped.

    Per test rather than per session: no test sees another's streams or consumers, and a
    test may restart it (:meth:`NatsServer.restart`) without disturbing the others.
    """
    async with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """``nats://127.0.0.1:PORT`` of :func:`nats_server`."""
    return nats_server.url


# ---------------------------------------------------------------------------------------
# end of NATS section
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Databases: sqlite_db_url, postgres_db_url, db_url (both), each migrated to head
# ---------------------------------------------------------------------------------------

from tests.support.db_fixtures import db_url, postgres_db_url, sqlite_db_url  # noqa: E402, F401

# ---------------------------------------------------------------------------------------
# The local model (llama.cpp server + SmolLM2), once per test session
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_model_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.support.model_server import local_model_server

    with local_model_server(tmp_path_factory.mktemp("model")) as url:
        yield url
