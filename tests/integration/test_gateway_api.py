"""The gateway's two front doors against a fake upstream: the official openai SDK over
HTTP, gRPC Quote / Usage / Feedback, API keys, bad input, and a budget under 200
concurrent requests. Gateway and profiler run as real processes on NATS and SQLite."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import openai
import pytest

from llmproxy.gateway import admin
from llmproxy.gateway.catalog import load_catalog
from llmproxy.gateway.core import QUOTE_OUTPUT_TOKENS, TOKENS_PER_MESSAGE, estimate_request
from llmproxy.gateway.fake_upstream import ANSWER
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.processes import free_port
from llmproxy.platform.tokens import count_tokens
from llmproxy.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.support.services import ServiceProcess, service_env

pytestmark = pytest.mark.nats

CATALOG = {
    "default_model": "fake-small",
    "reference_model": "fake-large",
    "models": [
        {"name": "fake-small", "provider": "openai-compatible", "context_window": 512,
         "quality": 0.5, "price_per_million": {"input": 1.0, "output": 2.0}},
        {"name": "fake-large", "provider": "openai-compatible", "context_window": 8192,
         "quality": 0.9, "price_per_million": {"input": 5.0, "output": 15.0}},
        {"name": "gpt-4o", "provider": "openai", "api_key_env": "NO_SUCH_KEY_VAR",
         "context_window": 128000, "price_per_million": {"input": 2.5, "output": 10.0}},
    ],
}  # fmt: skip


@dataclass
class Gateway:
    http: str
    grpc: str
    key: str
    revoked_key: str
    upstream: str
    db_url: str
    catalog_file: Path

    def served(self) -> int:
        return int(httpx.get(f"{self.upstream}/stats").json()["completions"])

    def sdk(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.http, api_key=key or self.key, max_retries=0)


async def _with_sessions(url: str, work):  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    try:
        return await work(session_factory(engine))
    finally:
        await engine.dispose()


async def _setup_tenant(url: str) -> tuple[str, str]:
    async def work(sessions):  # type: ignore[no-untyped-def]
        await admin.create_tenant(sessions, "acme")
        _, key = await admin.create_key(sessions, tenant="acme", app="web")
        revoked, old = await admin.create_key(sessions, tenant="acme", app="web")
        await admin.revoke_key(sessions, revoked.key_id)
        return key, old

    return await _with_sessions(url, work)


@pytest.fixture
def gateway(nats_url: str, sqlite_db_url: str, tmp_path: Path) -> Iterator[Gateway]:
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "llmproxy.gateway.fake_upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    catalog = json.loads(json.dumps(CATALOG))
    for model in catalog["models"][:2]:
        model["base_url"] = base
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(catalog))
    key, revoked = asyncio.run(_setup_tenant(sqlite_db_url))
    http_port = free_port()
    env = service_env(
        NATS_URL=nats_url,
        DATABASE_URL=sqlite_db_url,
        LLMPROXY_CATALOG_FILE=str(catalog_file),
        LLMPROXY_HTTP_PORT=str(http_port),
        LLMPROXY_AUTH_CACHE_TTL="0",
        LLMPROXY_LIMITS_CACHE_TTL="0",
    )
    profiler = ServiceProcess("profiler", env, tmp_path / "profiler.log").start()
    service = ServiceProcess("gateway", env, tmp_path / "gateway.log").start()
    try:
        yield Gateway(
            http=f"http://127.0.0.1:{http_port}/v1",
            grpc=service.address,
            key=key,
            revoked_key=revoked,
            upstream=base,
            db_url=sqlite_db_url,
            catalog_file=catalog_file,
        )
    finally:
        print(f"--- gateway log ---\n{service.log.read_text()[-4000:]}")
        assert service.terminate() == 0
        profiler.terminate()
        upstream.terminate()
        upstream.wait(10)


def test_the_openai_sdk_works_unchanged_sync_and_streaming(gateway: Gateway) -> None:
    client = gateway.sdk()
    raw = client.chat.completions.with_raw_response.create(
        model="fake-small",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=32,
        extra_body={"llmproxy": {"preferences": {"objective": "cost"}}},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 7)
    # 12 in at $1/M + 7 out at $2/M = 26,000 nano-USD; the reference would cost 165,000
    assert raw.headers["x-llmproxy-model"] == "fake-small"
    assert raw.headers["x-llmproxy-cost-nanousd"] == "26000"
    assert raw.headers["x-llmproxy-reference-model"] == "fake-large"
    assert raw.headers["x-llmproxy-saved-nanousd"] == str(12 * 5_000 + 7 * 15_000 - 26_000)
    assert raw.headers["x-llmproxy-cache"] == "bypassed" and raw.headers["x-llmproxy-eta"]
    # the metadata also rides in a field the SDK ignores but keeps
    assert completion.model_extra["llmproxy"]["cost"]["cost_nanousd"] == "26000"

    stream_raw = client.chat.completions.with_raw_response.create(
        model="fake-small",
        messages=[{"role": "user", "content": "Stream it."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert stream_raw.headers["x-llmproxy-model"] == "fake-small"
    chunks = list(stream_raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == ANSWER
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    assert [m.id for m in client.models.list()] == ["fake-small", "fake-large"]


def _post(
    gateway: Gateway, body: bytes | dict, key: str | None = None, **headers: str
) -> httpx.Response:  # type: ignore[type-arg]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    auth = {"authorization": f"Bearer {key or gateway.key}"} if key != "" else {}
    return httpx.post(
        f"{gateway.http}/chat/completions",
        content=content,
        headers={"content-type": "application/json", **auth, **headers},
        timeout=30,
    )


def test_bad_input_is_a_clear_4xx_and_never_reaches_the_provider(gateway: Gateway) -> None:
    hi = [{"role": "user", "content": "hi"}]
    cases = [
        (b'{"messages": [', None, 400, "malformed JSON"),
        (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', None, 400, "not valid UTF-8"),
        ({"messages": hi, "temperature": "hot"}, None, 400, "temperature"),
        ({"messages": hi, "max_tokens": "ten"}, None, 400, "max_tokens"),
        ({"messages": []}, None, 400, "messages"),
        ({"messages": [{"role": "user", "content": "   "}]}, None, 400, "every message is empty"),
        ({"messages": [{"role": "user", "content": "x" * 200_001}]}, None, 400, "the limit is"),
        ({"messages": [{"role": "user", "content": "word " * 600}]}, None, 400, "context window"),
        ({"messages": hi, "model": "gpt-9"}, None, 404, "unknown model 'gpt-9'"),
        ({"messages": hi}, "", 401, "missing API key"),
        ({"messages": hi}, "sk-not-ours", 401, "invalid API key"),
        ({"messages": hi}, "llp_AAAAAAAA_" + "A" * 43, 401, "invalid API key"),
        ({"messages": hi}, gateway.revoked_key, 401, "revoked"),
    ]
    before = gateway.served()
    for body, key, status, text in cases:
        response = _post(gateway, body, key)
        assert response.status_code == status, (
            body if isinstance(body, bytes) else str(body)[:80],
            response.text,
        )
        error = response.json()["error"]
        assert text in error["message"], error
        assert error["type"]
    assert gateway.served() == before  # nothing reached the provider


async def _set_budget(url: str, nanousd: int) -> str:
    async def work(sessions):  # type: ignore[no-untyped-def]
        rule = await admin.set_limit(
            sessions, tenant="acme", app="web", metric="cost_nanousd", window="day", amount=nanousd
        )
        return rule.id

    return await _with_sessions(url, work)


def test_a_budget_holds_under_200_concurrent_requests(gateway: Gateway) -> None:
    prompt = "How far is the moon?"
    model = load_catalog(str(gateway.catalog_file), environ={}).get("fake-small")
    estimate = estimate_request(model, count_tokens(prompt) + TOKENS_PER_MESSAGE, 16)
    budget = 10 * estimate.cost_nanousd
    limit_id = asyncio.run(_set_budget(gateway.db_url, budget))
    body = {
        "model": "fake-small",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 16,
    }

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            headers = {"authorization": f"Bearer {gateway.key}"}
            return await asyncio.gather(
                *(
                    client.post(f"{gateway.http}/chat/completions", json=body, headers=headers)
                    for _ in range(200)
                )
            )

    responses = asyncio.run(fire())
    ok = [r for r in responses if r.status_code == 200]
    rejected = [r for r in responses if r.status_code != 200]
    spent = sum(int(r.headers["x-llmproxy-cost-nanousd"]) for r in ok)
    assert len(ok) >= 10
    assert spent <= budget + estimate.cost_nanousd
    assert rejected, "200 requests cannot fit a budget of 10"
    for response in rejected:
        assert response.status_code == 429
        message = response.json()["error"]["message"]
        assert "budget of app 'acme:web'" in message and limit_id in message
        assert int(response.headers["retry-after"]) >= 1
    assert gateway.served() >= len(ok)


def test_grpc_quote_usage_feedback_and_keys(gateway: Gateway) -> None:
    auth = (("authorization", f"Bearer {gateway.key}"),)
    catalog = load_catalog(str(gateway.catalog_file), environ={})
    with grpc.insecure_channel(gateway.grpc) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        messages = [common_pb2.Message(role=common_pb2.ROLE_USER, content="Quote me.")]
        quote = stub.Quote(gateway_pb2.AskRequest(messages=messages), metadata=auth, timeout=10)
        tokens = count_tokens("Quote me.") + TOKENS_PER_MESSAGE
        by_model = {o.choice.model: o for o in quote.options}
        assert set(by_model) == set(catalog.models)
        for name, option in by_model.items():
            price = catalog.models[name].price
            assert option.estimated_cost_nanousd == price.cost_nanousd(tokens, QUOTE_OUTPUT_TOKENS)
        assert by_model["fake-small"].selected and by_model["fake-small"].within_constraints
        assert "not configured" in by_model["gpt-4o"].excluded_reason

        reply = stub.Ask(gateway_pb2.AskRequest(messages=messages), metadata=auth, timeout=10)
        assert reply.answer == ANSWER and reply.cost.cost_nanousd == 26_000
        accepted = stub.Feedback(
            gateway_pb2.FeedbackRequest(request_id=reply.request_id, rating=4), metadata=auth
        )
        assert accepted.accepted
        escalated = stub.Feedback(
            gateway_pb2.FeedbackRequest(request_id=reply.request_id, escalate=True), metadata=auth
        )
        assert escalated.escalated.choice.model == "fake-large"
        assert escalated.escalated.choice.escalated

        # The ledger: both answers land in usage exactly once (via llm.completed).
        deadline = time.monotonic() + 20
        while True:
            usage = stub.Usage(gateway_pb2.UsageRequest(), metadata=auth, timeout=10)
            if usage.requests >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert usage.requests == 2
        assert usage.cost_nanousd == 26_000 + escalated.escalated.cost.cost_nanousd
        assert {m.model for m in usage.by_model} == {"fake-small", "fake-large"}

        with pytest.raises(grpc.RpcError) as caught:
            stub.Usage(
                gateway_pb2.UsageRequest(level=gateway_pb2.USAGE_LEVEL_TENANT), metadata=auth
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        assert "usage:tenant" in caught.value.details()  # type: ignore[attr-defined]
        for metadata, expected in (
            ((), "missing API key"),
            ((("authorization", f"Bearer {gateway.revoked_key}"),), "revoked"),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Ask(gateway_pb2.AskRequest(messages=messages), metadata=metadata, timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            assert expected in caught.value.details()  # type: ignore[attr-defined]
