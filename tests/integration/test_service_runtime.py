"""Every service runs alone under `llmproxy serve`, reports its health, drains and exits 0."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest

from llmproxy.platform.processes import free_port
from llmproxy.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.support.fake_openai import Behaviour, FakeOpenAIServer
from tests.support.services import LLMPROXY, ServiceProcess, service_env

pytestmark = pytest.mark.nats

ALL = ["gateway", "context", "cache", "scheduler", "profiler", "optimizer", "whatsapp"]


def _ask(address: str, **request: object) -> gateway_pb2.AskReply:
    with grpc.insecure_channel(address) as channel:
        return gateway_pb2_grpc.GatewayStub(channel).Ask(
            gateway_pb2.AskRequest(**request),
            timeout=30,  # type: ignore[arg-type]
        )


def _messages(text: str) -> list[common_pb2.Message]:
    return [common_pb2.Message(role=common_pb2.ROLE_USER, content=text)]


@pytest.mark.parametrize("name", ALL)
def test_each_service_serves_alone_and_exits_0_on_sigterm(
    name: str, nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    env = service_env(
        NATS_URL=nats_url, DATABASE_URL=sqlite_db_url, LLMPROXY_METRICS_PORT=str(metrics_port)
    )
    service = ServiceProcess(name, env, tmp_path / f"{name}.log").start()
    try:
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "llmproxy_grpc_requests_total" in metrics
        started = time.monotonic()
        assert service.terminate() == 0
        assert time.monotonic() - started < 3 + 5  # drain timeout + process exit
        log = service.log.read_text()
        assert '"event": "serving"' in log and '"event": "stopped"' in log
    finally:
        service.kill()


def _gateway_env(nats_url: str, db_url: str, model_url: str) -> dict[str, str]:
    # These tests are about the runtime, not authentication: calls without a key are
    # served as the default tenant's (tests/integration/test_gateway_* cover the keys).
    return service_env(
        NATS_URL=nats_url,
        DATABASE_URL=db_url,
        LLMPROXY_LOCAL_MODEL_URL=model_url,
        LLMPROXY_ALLOW_ANONYMOUS="true",
    )


def test_sigterm_lets_an_in_flight_call_finish(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    with FakeOpenAIServer(Behaviour(delay_s=1.5, answer="slow but sure")) as provider:
        env = _gateway_env(nats_url, sqlite_db_url, provider.base_url)
        gateway = ServiceProcess("gateway", env, tmp_path / "gateway.log").start()
        try:
            result: dict[str, object] = {}

            def call() -> None:
                try:
                    result["reply"] = _ask(gateway.address, messages=_messages("hi"))
                except grpc.RpcError as exc:
                    result["error"] = exc

            caller = threading.Thread(target=call)
            caller.start()
            while not provider.requests:  # the call is in flight at the provider
                time.sleep(0.02)
            assert gateway.process is not None
            gateway.process.terminate()
            caller.join(10)
            assert "error" not in result, result
            assert result["reply"].answer == "slow but sure"  # type: ignore[attr-defined]
            assert gateway.process.wait(10) == 0
        finally:
            gateway.kill()


def test_a_provider_error_is_a_readable_status_not_a_hang(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    with FakeOpenAIServer(Behaviour(status=503)) as provider:
        env = _gateway_env(nats_url, sqlite_db_url, provider.base_url)
        gateway = ServiceProcess("gateway", env, tmp_path / "gateway.log").start()
        try:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                _ask(gateway.address, messages=_messages("hi"))
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            assert "answered HTTP 503: model overloaded" in caught.value.details()  # type: ignore[attr-defined]
            assert time.monotonic() - started < 15
        finally:
            gateway.kill()

    dead_port = free_port()
    env = _gateway_env(nats_url, sqlite_db_url, f"http://127.0.0.1:{dead_port}/v1")
    gateway = ServiceProcess("gateway", env, tmp_path / "gateway2.log").start()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            _ask(gateway.address, messages=_messages("hi"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert (
            f"cannot reach smollm2-135m-instruct at http://127.0.0.1:{dead_port}/v1"
            in caught.value.details()
        )  # type: ignore[attr-defined]
    finally:
        gateway.kill()


def test_bad_requests_get_invalid_argument_naming_the_problem(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    env = _gateway_env(nats_url, sqlite_db_url, "http://127.0.0.1:9/v1")
    gateway = ServiceProcess("gateway", env, tmp_path / "gateway.log").start()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            _ask(gateway.address, prompt="   ")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert "prompt is empty" in caught.value.details()  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError) as caught:
            _ask(
                gateway.address,
                messages=_messages("hi"),
                preferences=common_pb2.Preferences(pinned_model="gpt-9"),
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        assert "unknown model 'gpt-9'" in caught.value.details()  # type: ignore[attr-defined]
    finally:
        gateway.kill()


def _serve_and_fail(
    name: str, env: dict[str, str], timeout_s: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LLMPROXY, "serve", name], env=env, capture_output=True, text=True, timeout=timeout_s
    )


def test_an_invalid_setting_exits_non_zero_with_one_line_naming_it() -> None:
    result = _serve_and_fail("gateway", service_env(LLMPROXY_GRPC_PORT="abc"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LLMPROXY_GRPC_PORT" in lines[0] and "'abc'" in lines[0]


def test_unreachable_nats_is_retried_then_a_clear_exit() -> None:
    dead = free_port()
    env = service_env(
        NATS_URL=f"nats://127.0.0.1:{dead}",
        LLMPROXY_CONNECT_RETRIES="2",
        LLMPROXY_CONNECT_BACKOFF="100ms",
    )
    started = time.monotonic()
    result = _serve_and_fail("gateway", env)
    assert result.returncode == 3
    assert f"cannot reach NATS at nats://127.0.0.1:{dead}" in result.stderr
    assert time.monotonic() - started < 20


def test_unreachable_database_is_retried_then_a_clear_exit(nats_url: str) -> None:
    dead = free_port()
    env = service_env(
        NATS_URL=nats_url,
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{dead}/x",
        LLMPROXY_CONNECT_RETRIES="2",
        LLMPROXY_CONNECT_BACKOFF="100ms",
    )
    result = _serve_and_fail("profiler", env)
    assert result.returncode == 3
    assert "cannot reach the database" in result.stderr
