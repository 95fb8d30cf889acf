"""Running LLMProxy services as real processes in tests (`llmproxy serve <name>`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from llmproxy.platform.processes import free_port

LLMPROXY = str(Path(sys.executable).parent / "llmproxy")


def health(address: str, timeout_s: float = 1.0) -> str:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as exc:
        return f"UNREACHABLE ({exc.code().name})"  # type: ignore[attr-defined]


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, timeout_s: float = 30) -> ServiceProcess:
        env = {**self.env, "LLMPROXY_GRPC_PORT": str(self.port)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [LLMPROXY, "serve", self.name], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            deadline = time.monotonic() + timeout_s
            while health(self.address) != "SERVING":
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"{self.name} did not start:\n{self.log.read_text()[-3000:]}"
                    )
                time.sleep(0.1)
        return self

    def terminate(self, timeout_s: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def service_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without LLMPROXY_* leftovers, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROXY_")}
    env.pop("NATS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update({"LLMPROXY_DRAIN_TIMEOUT": "3s", "LLMPROXY_LOG_LEVEL": "info"})
    env.update(overrides)
    return env


def run_services(names: list[str], env: Mapping[str, str], logs: Path) -> dict[str, ServiceProcess]:
    """Start ``names`` in order; each gets the others' addresses (LLMPROXY_<NAME>_ADDR)."""
    started: dict[str, ServiceProcess] = {}
    for name in names:
        extra = {f"LLMPROXY_{n.upper()}_ADDR": s.address for n, s in started.items()}
        started[name] = ServiceProcess(name, {**env, **extra}, logs / f"{name}.log").start()
    return started


def start_together(services: Mapping[str, ServiceProcess], timeout_s: float = 120) -> None:
    """Start every service at once (their ports are known up front) and wait until each one's
    health check says SERVING; a service that exits fails with the end of its log."""
    for service in services.values():
        service.start(wait=False)
    deadline = time.monotonic() + timeout_s
    for service in services.values():
        while health(service.address) != "SERVING":
            assert service.process is not None and service.process.poll() is None, (
                f"{service.name} exited:\n{service.log.read_text()[-3000:]}"
            )
            assert time.monotonic() < deadline, f"{service.name} did not start in time"
            time.sleep(0.1)
