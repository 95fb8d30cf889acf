"""The container's health check, and the compose stack end to end where docker runs.

The compose run needs a docker engine with the compose plugin; without one it is skipped
and says why (the offline checks in test_compose.py still run everywhere).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from llmproxy.platform.processes import free_port
from tests.deploy.expectations import DEPLOY, REPOSITORY

HEALTHCHECK = DEPLOY / "healthcheck.py"


def _probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_healthcheck_passes_only_while_the_service_is_serving(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    serving = _probe(address)
    assert serving.returncode == 0 and "SERVING" in serving.stdout
    # the image's form: no argument, the port from LLMPROXY_GRPC_PORT
    port = address.rsplit(":", 1)[1]
    assert _probe(env={"LLMPROXY_GRPC_PORT": port, "PATH": "/usr/bin:/bin"}).returncode == 0
    servicer.enter_graceful_shutdown()  # what a draining service reports
    assert _probe(address).returncode == 1


def test_healthcheck_fails_clearly_when_nothing_listens() -> None:
    result = _probe(f"127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "unreachable" in result.stderr
    result = _probe(env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "LLMPROXY_GRPC_PORT" in result.stderr


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        return f"no docker engine answers ({info.stderr.strip().splitlines()[-1:]})"
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    if plugin.returncode != 0:
        return "the docker compose plugin is not installed"
    return None


def test_compose_stack_builds_starts_and_answers_through_the_openai_sdk() -> None:
    reason = _docker_unavailable()
    if reason is not None:
        print(f"SKIPPED compose end-to-end: {reason}")
        pytest.skip(f"compose end-to-end needs docker: {reason}")
    import openai

    project = f"llmproxy-test-{uuid.uuid4().hex[:8]}"
    compose = ["docker", "compose", "-p", project, "-f", str(DEPLOY / "compose.yaml")]

    def run(*args: str, timeout: float = 1800) -> str:
        done = subprocess.run(
            [*compose, *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    try:
        run("build")
        run("up", "-d", "--wait", "--wait-timeout", "600")
        admin = ("run", "--rm", "--entrypoint", "llmproxy", "migrate")
        run(*admin, "tenants", "create", "compose-test")
        key = run(*admin, "keys", "create", "--tenant", "compose-test", "--app", "e2e").split()[0]
        assert key.startswith("llp_")
        client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key=key, max_retries=3)
        deadline = time.monotonic() + 120
        while True:
            try:
                reply = client.chat.completions.create(
                    model="smollm2-135m-instruct",
                    messages=[{"role": "user", "content": "Say hi."}],
                    max_tokens=8,
                    timeout=120,
                )
                break
            except openai.APIConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        assert reply.choices[0].message.content
        assert "gateway" in run("ps", "--status", "running", "--services")
    finally:
        subprocess.run([*compose, "down", "-v"], cwd=REPOSITORY, capture_output=True, timeout=300)
