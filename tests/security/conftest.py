"""The stack the security suite probes, started once for the whole package.

Real processes (``llmproxy serve <name>``, as in production): profiler, context, cache,
scheduler, gateway (gRPC + the OpenAI-compatible HTTP API) and whatsapp (webhook on), on a
private nats-server with JetStream and a fresh PostgreSQL database. Every secret a user
configures is set, each to a unique random value the log test greps for: the provider API
key, the WhatsApp app secret, verify token and access token, the gateway API key the
whatsapp service uses, and the tenants' API keys. The gateway and whatsapp log at
``debug`` (the most a troubleshooting operator would turn on).

Two tenants, ``acme`` and ``globex``, each with an API key; ``acme`` also has the key its
WhatsApp channel uses.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from llmproxy.gateway import admin
from llmproxy.platform.db import create_engine, session_factory, upgrade
from llmproxy.platform.processes import free_port
from tests.security.probes import PROBES
from tests.support.databases import postgres_admin_url, require_postgres
from tests.support.fake_graph import PHONE_NUMBER_ID, FakeGraphServer
from tests.support.fake_openai import Behaviour, FakeOpenAIServer
from tests.support.nats_server import nats_server_binary
from tests.support.services import LLMPROXY, ServiceProcess, service_env, start_together

SERVICES = ("profiler", "context", "cache", "scheduler", "gateway", "whatsapp")
PROVIDER_KEY_ENV = "SECURITY_TEST_PROVIDER_KEY"
#: a model whose provider always fails (HTTP 500): its error path is probed for leaks
BROKEN_MODEL = "fake-broken"
CATALOG = {
    "default_model": "fake-small",
    "reference_model": "fake-large",
    "models": [
        {"name": "fake-small", "provider": "openai-compatible", "context_window": 8192,
         "quality": 0.5, "price_per_million": {"input": 1.0, "output": 2.0}},
        {"name": "fake-large", "provider": "openai-compatible", "context_window": 8192,
         "quality": 0.9, "price_per_million": {"input": 5.0, "output": 15.0}},
        {"name": BROKEN_MODEL, "provider": "openai-compatible", "context_window": 8192,
         "quality": 0.1, "price_per_million": {"input": 90.0, "output": 90.0}},
    ],
}  # fmt: skip


@dataclass
class SecureStack:
    db_url: str
    #: tenant -> full API key ("llp_<id>_<secret>")
    keys: dict[str, str]
    #: what must never appear in a log: name -> value
    secrets: dict[str, str]
    services: dict[str, ServiceProcess]
    http_url: str
    webhook_url: str
    graph: FakeGraphServer
    logs: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return self.services[name].address

    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[tenant]}"),)

    def query(self, sql: str, *args: object) -> list[dict[str, Any]]:
        async def run() -> list[dict[str, Any]]:
            connection = await asyncpg.connect(self.db_url, timeout=5)
            try:
                return [dict(r) for r in await connection.fetch(sql, *args)]
            finally:
                await connection.close()

        return asyncio.run(run())

    def all_logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log"))}


async def _tenants(url: str) -> dict[str, str]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    keys = {}
    try:
        for tenant in ("acme", "globex"):
            await admin.create_tenant(sessions, tenant)
            _, keys[tenant] = await admin.create_key(sessions, tenant=tenant, app="web")
        _, keys["acme-whatsapp"] = await admin.create_key(sessions, tenant="acme", app="whatsapp")
    finally:
        await engine.dispose()
    return keys


def _postgres_database() -> tuple[str, Callable[[], None]]:
    """A fresh, uniquely named database for the package and the function that drops it.

    (``fresh_postgres_database`` is an async context manager bound to one event loop; this
    fixture is synchronous and outlives many.)
    """
    admin_url = postgres_admin_url()
    admin_dsn = admin_url.render_as_string(hide_password=False)
    name = f"llmproxy_test_{uuid.uuid4().hex[:12]}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


def _start_nats(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "nats.log").open("ab") as log:
        process = subprocess.Popen(
            [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(port), "-js",
             "-sd", str(directory / "store")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return process, f"nats://127.0.0.1:{port}"


def _start_upstream(logs: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with (logs / "upstream.out").open("ab") as log:
        process = subprocess.Popen(
            [str(Path(LLMPROXY).parent / "python"), "-m", "llmproxy.gateway.fake_upstream",
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="package")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    require_postgres()
    home = tmp_path_factory.mktemp("security")
    logs = home / "logs"
    logs.mkdir()
    db_url, drop_database = _postgres_database()
    nats, nats_url = _start_nats(home / "nats")
    upstream, upstream_url = _start_upstream(logs)
    broken = FakeOpenAIServer(Behaviour(status=500))
    broken.__enter__()
    graph = FakeGraphServer()
    graph.__enter__()
    services: dict[str, ServiceProcess] = {}
    try:
        asyncio.run(upgrade(db_url))
        keys = asyncio.run(_tenants(db_url))
        the_secrets = {
            "provider API key": f"sk-sectest-{secrets.token_hex(16)}",
            "WhatsApp app secret": secrets.token_hex(16),
            "WhatsApp verify token": f"verify-{secrets.token_hex(8)}",
            "WhatsApp access token": f"EAAGsectest{secrets.token_hex(20)}",
        }
        for tenant, key in keys.items():
            # only the secret part is secret: the id ("llp_<id>_") is logged on purpose
            the_secrets[f"API key secret ({tenant})"] = key.split("_", 2)[2]
        catalog = json.loads(json.dumps(CATALOG))
        for model in catalog["models"]:
            model["api_key_env"] = PROVIDER_KEY_ENV
            model["base_url"] = broken.base_url if model["name"] == BROKEN_MODEL else upstream_url
        (home / "catalog.json").write_text(json.dumps(catalog))
        http_port, webhook_port = free_port(), free_port()
        env = service_env(
            NATS_URL=nats_url,
            DATABASE_URL=db_url,
            LLMPROXY_CATALOG_FILE=str(home / "catalog.json"),
            LLMPROXY_PROVIDER_BACKOFF="10ms",
        )
        env[PROVIDER_KEY_ENV] = the_secrets["provider API key"]
        services = {name: ServiceProcess(name, env, logs / f"{name}.log") for name in SERVICES}
        addresses = {f"LLMPROXY_{n.upper()}_ADDR": s.address for n, s in services.items()}
        for service in services.values():
            service.env = {**env, **addresses}
        services["gateway"].env.update(
            {
                "LLMPROXY_HTTP_PORT": str(http_port),
                "LLMPROXY_LOG_LEVEL": "debug",
                "LLMPROXY_AUTH_CACHE_TTL": "0",
            }
        )
        services["whatsapp"].env.update(
            {
                "LLMPROXY_LOG_LEVEL": "debug",
                "LLMPROXY_WEBHOOK_PORT": str(webhook_port),
                "LLMPROXY_WHATSAPP_APP_SECRET": the_secrets["WhatsApp app secret"],
                "LLMPROXY_WHATSAPP_VERIFY_TOKEN": the_secrets["WhatsApp verify token"],
                "LLMPROXY_WHATSAPP_ACCESS_TOKEN": the_secrets["WhatsApp access token"],
                "LLMPROXY_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
                "LLMPROXY_GRAPH_BASE_URL": graph.base_url,
                "LLMPROXY_GRAPH_BACKOFF": "10ms",
                "LLMPROXY_GATEWAY_API_KEY": keys["acme-whatsapp"],
                "LLMPROXY_TENANT_ID": "acme",
                "LLMPROXY_MAX_ANSWER_TOKENS": "64",
                "LLMPROXY_INBOX_POLL_INTERVAL": "200ms",
                # attempts to switch the signature check off: none of these exist, and
                # the webhook must still refuse unsigned posts (test_whatsapp_signature)
                "LLMPROXY_WHATSAPP_VERIFY_SIGNATURE": "false",
                "LLMPROXY_WHATSAPP_SKIP_SIGNATURE": "true",
                "LLMPROXY_WEBHOOK_INSECURE": "1",
                "LLMPROXY_ENV": "development",
            }
        )
        # all ports are known before anything starts: every service starts at once
        start_together(services)
        yield SecureStack(
            db_url=db_url,
            keys=keys,
            secrets=the_secrets,
            services=services,
            http_url=f"http://127.0.0.1:{http_port}/v1",
            webhook_url=f"http://127.0.0.1:{webhook_port}/webhook",
            graph=graph,
            logs=logs,
            extra={"broken": broken},
        )
    finally:
        running = [s for s in services.values() if s.process and s.process.poll() is None]
        for service in running:
            assert service.process is not None
            service.process.send_signal(signal.SIGTERM)
        for service in running:
            try:
                service.terminate(timeout_s=15)
            except subprocess.TimeoutExpired:
                pass
        for process in (upstream, nats):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        graph.__exit__(None, None, None)
        broken.__exit__(None, None, None)
        drop_database()
        shutil.rmtree(home / "nats", ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "security: the security suite (pytest -m security, under 90 s)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here is marked ``security`` (those on the stack also ``nats`` and
    ``postgres``); the log check runs last, so it reads the logs of every probe before it."""
    for item in items:
        if "tests/security/" not in item.nodeid:
            continue
        item.add_marker(pytest.mark.security)
        if "secure_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.nats)
            item.add_marker(pytest.mark.postgres)
    last = [i for i in items if "test_logs_hold_no_secrets" in i.nodeid]
    for item in last:
        items.remove(item)
    items.extend(last)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not PROBES:
        return
    width = max(len(p.area) for p in PROBES)
    terminalreporter.section(f"security probes ({len(PROBES)})")
    for probe in PROBES:
        terminalreporter.write_line(f"{probe.area:<{width}}  {probe.what}  ->  {probe.outcome}")
