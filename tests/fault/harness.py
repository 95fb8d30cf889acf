"""The real stack on PostgreSQL for end-to-end, security and fault tests.

``running_stack`` starts everything the way ``llmproxy up`` does (the same launcher,
:class:`~llmproxy.embedded.stack.EmbeddedStack`: every service its own process) but on

* a fresh PostgreSQL database (unique per test, dropped afterwards) reached through a
  :class:`PausableProxy` the test controls, so "the database stops" can be simulated
  without touching the shared server on 5432 (other work uses it);
* a restartable ``nats-server`` with JetStream (:class:`~tests.support.nats_server.NatsServer`:
  same port and data across a restart);
* the fast fake OpenAI-compatible upstream (``llmproxy.gateway.fake_upstream``) behind a
  priced catalog model, so every answer costs money and the ledger has something to add up.

Two tenants exist, each with its own key: ``acme`` (with a daily cost and request limit,
so the gateway's spend counters are exercised) and ``globex``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from llmproxy.embedded.stack import EmbeddedStack, StackConfig
from llmproxy.gateway import admin
from llmproxy.platform.db import create_engine, session_factory, upgrade
from llmproxy.platform.processes import free_port, spawn, stop_process
from tests.support.databases import fresh_postgres_database, require_postgres
from tests.support.nats_server import NatsServer
from tests.support.tcp_proxy import PausableProxy

__all__ = ["MODEL", "PausableProxy", "RunningStack", "running_stack"]

MODEL = "fake-small"
#: prices per 1M tokens: every answer of the fake upstream (12 in, 7 out) costs money
CATALOG = {
    "default_model": MODEL,
    "reference_model": "fake-large",
    "models": [
        {"name": MODEL, "provider": "openai-compatible", "context_window": 4096,
         "quality": 0.5, "price_per_million": {"input": 1.0, "output": 2.0}},
        {"name": "fake-large", "provider": "openai-compatible", "context_window": 8192,
         "quality": 0.9, "price_per_million": {"input": 5.0, "output": 15.0}},
    ],
}  # fmt: skip
TENANTS = ("acme", "globex")
#: far above what a test spends: the limits are there to be counted, not to refuse
LIMITS = {"cost_nanousd": 10**15, "requests": 10**9}


@dataclass
class RunningStack:
    stack: EmbeddedStack
    nats: NatsServer
    proxy: PausableProxy
    #: the test's own URL of the database (direct, never through the proxy)
    database_url: str
    keys: dict[str, str]
    say: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return self.stack.http_url

    @property
    def grpc_address(self) -> str:
        return self.stack.addresses["gateway"]

    def logs(self, name: str, lines: int = 40) -> str:
        try:
            text = (self.stack.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def query(self, sql: str, *args: object) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.database_url, timeout=5)
        try:
            return await connection.fetch(sql, *args)  # type: ignore[no-any-return]
        finally:
            await connection.close()


async def _create_tenants(url: str) -> dict[str, str]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    keys = {}
    try:
        for tenant in TENANTS:
            await admin.create_tenant(sessions, tenant)
            _, keys[tenant] = await admin.create_key(sessions, tenant=tenant, app="web")
        for metric, amount in LIMITS.items():
            await admin.set_limit(
                sessions, tenant="acme", metric=metric, window="day", amount=amount
            )
    finally:
        await engine.dispose()
    return keys


def _environment(
    home: Path, nats_url: str, database_url: str, upstream: str, extra: Mapping[str, str]
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROXY_")}
    env.pop("NATS_URL", None)
    env.pop("DATABASE_URL", None)
    catalog = json.loads(json.dumps(CATALOG))
    for model in catalog["models"]:
        model["base_url"] = upstream
    (home / "catalog.json").write_text(json.dumps(catalog))
    env.update(
        {
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            # the launcher then starts no model server of its own
            "LLMPROXY_LOCAL_MODEL_URL": upstream,
            "LLMPROXY_CATALOG_FILE": str(home / "catalog.json"),
            "LLMPROXY_LOG_LEVEL": "info",
            "LLMPROXY_PROVIDER_TIMEOUT": "10s",
            # a reservation whose gateway was killed is released (and counted from the
            # ledger) within the run, not after the default 15 minutes; it must outlive a
            # request: provider_timeout x (retries + 1) = 30 s, plus the longest wait for a
            # capacity-limited model's slot
            "LLMPROXY_RESERVATION_TTL": "40s",
            "LLMPROXY_QUEUE_MAX_WAIT": "5s",
            "LLMPROXY_RESERVATION_SWEEP_INTERVAL": "2s",
            # services (re)started while the database is away keep trying for ~30 s
            "LLMPROXY_CONNECT_RETRIES": "8",
        }
    )
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def _fake_upstream(logs: Path) -> AsyncIterator[str]:
    port = free_port()
    process = spawn(
        [sys.executable, "-m", "llmproxy.gateway.fake_upstream", "--port", str(port)],
        env=dict(os.environ),
        log_path=logs / "upstream.log",
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                try:
                    await client.get(f"{url}/stats")
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the fake upstream did not start") from None
                    await asyncio.sleep(0.05)
        yield url
    finally:
        await asyncio.to_thread(stop_process, process, timeout_s=5)


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path, *, extra_env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningStack]:
    """The whole stack on a private PostgreSQL database and NATS; always torn down.

    ``extra_env`` reaches every service (e.g. the WhatsApp channel's credentials)."""
    require_postgres()
    home = tmp_path / "home"
    home.mkdir(parents=True)
    async with contextlib.AsyncExitStack() as exits:
        direct_url = await exits.enter_async_context(fresh_postgres_database())
        nats = await exits.enter_async_context(NatsServer(tmp_path / "nats"))
        upstream = await exits.enter_async_context(_fake_upstream(home / "logs"))
        direct = make_url(direct_url)
        proxy = PausableProxy(direct.host or "127.0.0.1", direct.port or 5432)
        await proxy.start()
        exits.push_async_callback(proxy.close)
        proxied_url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        # tenants and limits exist before the first request (the gateway caches limits)
        await upgrade(direct_url)
        keys = await _create_tenants(direct_url)
        said: list[str] = []
        stack = EmbeddedStack(
            StackConfig(
                home=home,
                gateway_port=free_port(),
                http_port=free_port(),
                start_timeout_s=120,
                drain_timeout_s=3,
                environ=_environment(home, nats.url, proxied_url, upstream, extra_env or {}),
            ),
            say=said.append,
        )
        await stack.start()
        exits.push_async_callback(stack.stop)
        yield RunningStack(stack, nats, proxy, direct_url, keys, said)
