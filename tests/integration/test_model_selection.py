"""Model selection end to end: the profiler learns profiles from real events, and a router
trained and activated with the CLI is used by a running gateway within seconds.

Profiler and gateway run as real processes on a real NATS server and SQLite; the gateway
talks to the fake OpenAI-compatible upstream and embeds prompts with the real MiniLM model.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from llmproxy.gateway import admin
from llmproxy.optimizer.router.dataset import DEFAULT_DATA_DIR
from llmproxy.platform.bus.jetstream import JetStreamBus
from llmproxy.platform.bus.port import Envelope
from llmproxy.platform.bus.subjects import LLM_COMPLETED, LLM_FEEDBACK, PROFILE_UPDATED
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.events import new_event_meta, publish_event
from llmproxy.platform.processes import free_port
from llmproxy.v1 import (
    common_pb2,
    events_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    profiler_pb2,
    profiler_pb2_grpc,
)
from tests.support.services import LLMPROXY, ServiceProcess, service_env

pytestmark = pytest.mark.nats

CATALOG = {
    "default_model": "fake-small",
    "reference_model": "fake-large",
    "models": [
        {"name": "fake-small", "provider": "openai-compatible", "context_window": 4096,
         "quality": 0.5, "price_per_million": {"input": 1.0, "output": 2.0}},
        {"name": "fake-large", "provider": "openai-compatible", "context_window": 8192,
         "quality": 0.9, "price_per_million": {"input": 5.0, "output": 15.0}},
    ],
}  # fmt: skip


def _completed(
    request_id: str, model: str, *, ttft_ms: int, latency_ms: int, error: bool = False
) -> events_pb2.LlmCompleted:
    event = events_pb2.LlmCompleted(
        meta=new_event_meta("test"),
        request_id=request_id,
        scope=common_pb2.Scope(tenant_id="acme", app_id="web"),
        choice=common_pb2.ModelChoice(provider="openai-compatible", model=model),
        usage=common_pb2.TokenUsage(input_tokens=20, output_tokens=51),
        cost=common_pb2.Cost(cost_nanousd=0 if error else 5_000),
        cache=common_pb2.CacheReport(outcome=common_pb2.CACHE_OUTCOME_MISS),
        task_category="math",
        error=error,
    )
    event.latency.FromMilliseconds(latency_ms)
    event.time_to_first_token.FromMilliseconds(ttft_ms)
    return event


async def test_the_profiler_learns_latency_cost_errors_and_quality(
    nats_url: str, sqlite_db_url: str, tmp_path: Path
) -> None:
    env = service_env(
        NATS_URL=nats_url, DATABASE_URL=sqlite_db_url, LLMPROXY_PROFILE_PUBLISH_INTERVAL="100ms"
    )
    profiler = ServiceProcess("profiler", env, tmp_path / "profiler.log").start()
    bus = await JetStreamBus.connect(nats_url, name="test")
    updates: list[events_pb2.ProfileUpdated] = []

    async def on_update(envelope: Envelope) -> None:
        message = events_pb2.ProfileUpdated()
        message.ParseFromString(envelope.data)
        updates.append(message)

    await bus.subscribe(PROFILE_UPDATED, on_update, consumer="test-profiles")
    try:
        for i in range(10):
            # ttft 100..190 ms; 50 more tokens at 10 ms each
            event = _completed(f"r{i}", "fake-small", ttft_ms=100 + 10 * i, latency_ms=600 + 10 * i)
            await publish_event(bus, LLM_COMPLETED, event)
        failed = _completed("bad", "fake-small", ttft_ms=0, latency_ms=0, error=True)
        await publish_event(bus, LLM_COMPLETED, failed)
        # feedback follows an answer the caller has seen: wait until the answers are profiled
        async with grpc.aio.insecure_channel(profiler.address) as channel:
            stub = profiler_pb2_grpc.ProfilerStub(channel)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                reply = await stub.GetProfiles(profiler_pb2.GetProfilesRequest(), timeout=5)
                if reply.profiles and reply.profiles[0].requests >= 11:
                    break
                await asyncio.sleep(0.2)
        for request_id, kind, rating in [
            ("r0", events_pb2.FEEDBACK_KIND_RATING, 5),
            ("r1", events_pb2.FEEDBACK_KIND_WRONG, 0),
            ("r2", events_pb2.FEEDBACK_KIND_RATING, 5),
            ("r3", events_pb2.FEEDBACK_KIND_RATING, 5),
        ]:
            feedback = events_pb2.LlmFeedback(
                meta=new_event_meta("test"), request_id=request_id, kind=kind, rating=rating
            )
            await publish_event(bus, LLM_FEEDBACK, feedback)
        async with grpc.aio.insecure_channel(profiler.address) as channel:
            stub = profiler_pb2_grpc.ProfilerStub(channel)
            deadline = time.monotonic() + 20
            while True:
                reply = await stub.GetProfiles(profiler_pb2.GetProfilesRequest(), timeout=5)
                profile = reply.profiles[0] if reply.profiles else None
                fed = profile.feedback_by_category.get("math", 0) if profile else 0
                if (profile and profile.requests >= 11 and fed >= 4) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert profile is not None and profile.model == "fake-small"
            assert (profile.requests, profile.errors) == (11, 1)
            assert profile.error_rate == pytest.approx(1 / 11)
            assert profile.mean_cost_nanousd == 5_000
            assert profile.ttft_p50.ToMilliseconds() == pytest.approx(140, rel=0.08)
            assert profile.ttft_p95.ToMilliseconds() == pytest.approx(190, rel=0.08)
            per_token_ms = profile.time_per_output_token_p50.ToNanoseconds() / 1e6
            assert per_token_ms == pytest.approx(10, rel=0.08)
            assert profile.quality_by_category["math"] == pytest.approx(0.75)
            # the usage ledger is still kept, one row per event
            usage = await stub.ListUsage(profiler_pb2.ListUsageRequest(tenant_id="acme"))
            assert len(usage.records) == 11
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetProfiles(profiler_pb2.GetProfilesRequest(models=[""]))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        deadline = time.monotonic() + 10
        while not any(p.requests >= 11 for u in updates for p in u.profiles):
            assert time.monotonic() < deadline, "no profile.updated with the latest profile"
            await asyncio.sleep(0.1)
    finally:
        await bus.close()
        assert profiler.terminate() == 0


# -- a router activated with the CLI reaches a running gateway ---------------------------


async def _tenant_key(url: str) -> str:
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        await admin.create_tenant(sessions, "acme")
        _, key = await admin.create_key(sessions, tenant="acme", app="web")
        return key
    finally:
        await engine.dispose()


@pytest.fixture
def stack(nats_url: str, sqlite_db_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "llmproxy.gateway.fake_upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    catalog = json.loads(json.dumps(CATALOG))
    for model in catalog["models"]:
        model["base_url"] = f"http://127.0.0.1:{port}/v1"
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(catalog))
    key = asyncio.run(_tenant_key(sqlite_db_url))
    env = service_env(
        NATS_URL=nats_url,
        DATABASE_URL=sqlite_db_url,
        LLMPROXY_CATALOG_FILE=str(catalog_file),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    gateway = ServiceProcess("gateway", env, tmp_path / "gateway.log").start()
    try:
        yield {"gateway": gateway.address, "key": key, **env}
    finally:
        print(f"--- gateway log ---\n{gateway.log.read_text()[-3000:]}")
        assert gateway.terminate() == 0
        upstream.terminate()
        upstream.wait(10)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LLMPROXY, "router", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason="../shared/data/routing/mmlu absent")
def test_a_router_activated_with_the_cli_is_used_by_the_running_gateway(
    stack: dict[str, str],
) -> None:
    env = {k: v for k, v in stack.items() if k not in ("gateway", "key")}
    trained = _cli(
        env,
        "train",
        "--version",
        "r1",
        "--domains",
        "anatomy,astronomy,virology",
        "--limit",
        "8",
        "--cheap-model",
        "fake-small",
        "--strong-model",
        "fake-large",
        "--rule",
        "confidence",
    )
    assert trained.returncode == 0, trained.stderr
    assert "saved (inactive)" in trained.stdout
    # an unknown version changes nothing and says so
    missing = _cli(env, "activate", "r9")
    assert missing.returncode == 1 and "no router version 'r9'" in missing.stderr

    auth = (("authorization", f"Bearer {stack['key']}"),)
    question = gateway_pb2.AskRequest(
        messages=[common_pb2.Message(role=common_pb2.ROLE_USER, content="What is 2 + 2?")],
        preferences=common_pb2.Preferences(allow_cascade=True),
    )
    with grpc.insecure_channel(stack["gateway"]) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        before = stub.Ask(question, metadata=auth, timeout=20)
        assert (before.choice.model, before.choice.policy) == ("fake-small", "default")

        # threshold 0.0: the cheapest candidate is always good enough; 1.0: never
        activated = _cli(env, "activate", "r1", "--threshold", "0")
        assert activated.returncode == 0, activated.stderr
        started = time.monotonic()
        while True:
            reply = stub.Ask(question, metadata=auth, timeout=20)
            if reply.choice.policy.startswith("cascade:") or time.monotonic() - started > 10:
                break
            time.sleep(0.1)
        assert reply.choice.policy == "cascade:r1", "the gateway did not switch within 10 s"
        assert reply.choice.model == "fake-small" and not reply.choice.escalated
        assert 0 < reply.choice.predicted_quality < 1
        assert reply.cost.saved_nanousd > 0 and reply.cost.reference_model == "fake-large"

        # a stricter threshold: low confidence in the cheap model escalates, and says so
        assert _cli(env, "activate", "r1", "--threshold", "1").returncode == 0
        started = time.monotonic()
        while True:
            reply = stub.Ask(question, metadata=auth, timeout=20)
            if reply.choice.escalated or time.monotonic() - started > 10:
                break
            time.sleep(0.1)
        assert (reply.choice.model, reply.choice.escalated) == ("fake-large", True)
        assert "threshold 1.00" in reply.choice.reason

        # Quote makes the very same decision
        quote = stub.Quote(question, metadata=auth, timeout=20)
        (selected,) = [o for o in quote.options if o.selected]
        assert (selected.choice.model, selected.choice.policy) == ("fake-large", "cascade:r1")
        assert selected.choice.escalated
        small = next(o for o in quote.options if o.choice.model == "fake-small")
        assert small.estimated_saved_nanousd > 0 and small.reference_model == "fake-large"

        # pinning bypasses the router entirely
        pinned = gateway_pb2.AskRequest()
        pinned.CopyFrom(question)
        pinned.preferences.pinned_model = "fake-small"
        reply = stub.Ask(pinned, metadata=auth, timeout=20)
        assert (reply.choice.model, reply.choice.policy) == ("fake-small", "pinned")

        # feedback on that answer becomes a training example of the next version
        stub.Feedback(
            gateway_pb2.FeedbackRequest(request_id=reply.request_id, wrong=True),
            metadata=auth,
            timeout=20,
        )
        time.sleep(0.5)
        with_feedback = _cli(
            env,
            "train",
            "--version",
            "r2",
            "--domains",
            "anatomy,astronomy,virology",
            "--limit",
            "8",
            "--cheap-model",
            "fake-small",
            "--strong-model",
            "fake-large",
            "--with-feedback",
        )
        assert with_feedback.returncode == 0, with_feedback.stderr
        assert "-> 1 training examples" in with_feedback.stdout
        assert "25 prompts" in with_feedback.stdout

        # deactivating the router: the gateway falls back to the rule-based policy
        deactivated = _cli(env, "deactivate")
        assert deactivated.returncode == 0, deactivated.stderr
        assert "router r1 deactivated" in deactivated.stdout
        started = time.monotonic()
        while True:
            reply = stub.Ask(question, metadata=auth, timeout=20)
            if reply.choice.policy == "default" or time.monotonic() - started > 10:
                break
            time.sleep(0.1)
        assert (reply.choice.model, reply.choice.policy) == ("fake-small", "default")

    listed = _cli(env, "list")
    assert listed.returncode == 0 and "* r1" not in listed.stdout and "r2" in listed.stdout
