"""Requests to a capacity-limited model wait their turn in the scheduler's queue: gateway and
scheduler as real processes on real NATS and SQLite, a 1-slot upstream that takes a known
time per answer. Each caller gets the ETA before its answer (gRPC: the first stream message
or initial metadata; HTTP: the headers), the ETAs follow the queue, one tenant's burst does
not starve another tenant, and the gateway still answers when the scheduler is down."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import openai
import pytest

from llmproxy.gateway import admin
from llmproxy.gateway.fake_upstream import _chunks, _completion
from llmproxy.platform.db import create_engine, session_factory
from llmproxy.platform.processes import free_port
from llmproxy.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.support.services import ServiceProcess, service_env

pytestmark = pytest.mark.nats

#: seconds the upstream takes per answer; the catalog's prior says the same
#: (first token 0.1 s, then 40 tokens at 100 tokens/s)
ANSWER_S = 0.5
MAX_TOKENS = 40


class SlowUpstream:
    """An OpenAI-compatible upstream with ONE slot: it answers after ``ANSWER_S`` seconds
    and records the most requests it ever had at once."""

    def __init__(self) -> None:
        self.port = free_port()
        self.active = 0
        self.most_at_once = 0
        self.served = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> SlowUpstream:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = json.loads(await reader.readexactly(int(headers.get("content-length", 0))))
                self.active += 1
                self.most_at_once = max(self.most_at_once, self.active)
                try:
                    await asyncio.sleep(ANSWER_S)
                finally:
                    self.active -= 1
                self.served += 1
                model = body.get("model", "slow")
                if body.get("stream"):
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                        b"transfer-encoding: chunked\r\n\r\n"
                    )
                    for event in _chunks(model):
                        writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                    writer.write(b"0\r\n\r\n")
                else:
                    data = _completion(model)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        + f"content-length: {len(data)}\r\n\r\n".encode()
                        + data
                    )
                await writer.drain()


@dataclass
class Setup:
    gateway: ServiceProcess
    scheduler: ServiceProcess
    upstream: SlowUpstream
    http: str
    keys: dict[str, str]

    def metadata(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[tenant]}"),)


async def _tenants(url: str, names: list[str]) -> dict[str, str]:
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        keys = {}
        for name in names:
            await admin.create_tenant(sessions, name)
            _, keys[name] = await admin.create_key(sessions, tenant=name, app="web")
        return keys
    finally:
        await engine.dispose()


@pytest.fixture
def setup(nats_url: str, sqlite_db_url: str, tmp_path: Path) -> Iterator[Setup]:
    upstream = SlowUpstream().start()
    catalog = {
        "default_model": "slow-local",
        "models": [
            {
                "name": "slow-local",
                "provider": "openai-compatible",
                "base_url": upstream.base_url,
                "context_window": 4096,
                "capacity_slots": 1,
                "first_token_ms": 100,
                "output_tokens_per_s": 100,
                "price_per_million": {"input": 0, "output": 0},
            }
        ],
    }
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(catalog))
    keys = asyncio.run(_tenants(sqlite_db_url, ["acme", "globex", "initech"]))
    base = service_env(NATS_URL=nats_url, DATABASE_URL=sqlite_db_url)
    scheduler = ServiceProcess(
        "scheduler",
        {**base, "LLMPROXY_HEARTBEAT_INTERVAL": "0.5s", "LLMPROXY_EXECUTOR_TIMEOUT": "3s"},
        tmp_path / "scheduler.log",
    ).start()
    http_port = free_port()
    gateway = ServiceProcess(
        "gateway",
        {
            **base,
            "LLMPROXY_CATALOG_FILE": str(catalog_file),
            "LLMPROXY_HTTP_PORT": str(http_port),
            "LLMPROXY_SCHEDULER_ADDR": scheduler.address,
            "LLMPROXY_QUEUE_TENANT_WEIGHTS": "{}",
        },
        tmp_path / "gateway.log",
    ).start()
    try:
        _wait_for_queue(gateway.log)
        yield Setup(gateway, scheduler, upstream, f"http://127.0.0.1:{http_port}/v1", keys)
    finally:
        print(f"--- gateway log ---\n{gateway.log.read_text()[-3000:]}")
        gateway.terminate()
        scheduler.kill()
        upstream.stop()


def _wait_for_queue(log: Path, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while "request queue ready" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def _request(text: str) -> gateway_pb2.AskRequest:
    return gateway_pb2.AskRequest(
        messages=[common_pb2.Message(role=common_pb2.ROLE_USER, content=text)],
        generation=common_pb2.GenerationParams(max_tokens=MAX_TOKENS),
    )


def _at(timestamp) -> float:  # type: ignore[no-untyped-def]
    return timestamp.ToDatetime(tzinfo=UTC).timestamp()


@dataclass
class Streamed:
    tenant: str
    sent: float
    eta_at: float = 0.0
    predicted_start: float = 0.0
    predicted_completion: float = 0.0
    first_text_at: float = 0.0
    answered_at: float = 0.0
    queued: bool = False


async def _ask_stream(stub, setup: Setup, tenant: str, text: str) -> Streamed:  # type: ignore[no-untyped-def]
    record = Streamed(tenant, time.time())
    async for chunk in stub.AskStream(_request(text), metadata=setup.metadata(tenant), timeout=60):
        kind = chunk.WhichOneof("kind")
        if kind == "accepted":
            record.eta_at = time.time()
            eta = chunk.accepted.eta
            record.queued = eta.queued
            record.predicted_start = _at(eta.predicted_start)
            record.predicted_completion = _at(eta.predicted_completion)
        elif kind == "delta" and not record.first_text_at:
            record.first_text_at = time.time()
        elif kind == "final":
            record.answered_at = time.time()
            assert chunk.final.eta.queued
            assert _at(chunk.final.eta.predicted_completion) == record.predicted_completion
    return record


def test_each_caller_gets_its_eta_before_the_answer_and_the_etas_follow_the_queue(
    setup: Setup,
) -> None:
    async def run() -> list[Streamed]:
        async with grpc.aio.insecure_channel(setup.gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            tasks = []
            for i in range(4):
                tasks.append(asyncio.create_task(_ask_stream(stub, setup, "acme", f"q{i}")))
                await asyncio.sleep(0.05)  # a known arrival order
            return list(await asyncio.gather(*tasks))

    records = asyncio.run(run())
    assert setup.upstream.most_at_once == 1  # the 1-slot backend never saw two at once
    for r in records:
        assert r.queued and r.eta_at and r.answered_at
        # the ETA came before the answer: long before it, for all but the first
        assert r.eta_at < r.first_text_at <= r.answered_at
        assert r.predicted_start <= r.predicted_completion
    # ordered: the answers came in the order of their ETAs (the queue's order), and each
    # predicted completion is one service time (0.5 s) after the one before
    by_eta = sorted(records, key=lambda r: r.predicted_completion)
    answered = [r.answered_at for r in by_eta]
    assert answered == sorted(answered)
    completions = [r.predicted_completion for r in by_eta]
    gaps = [b - a for a, b in itertools.pairwise(completions)]
    assert all(0.4 < g < 0.7 for g in gaps), gaps
    for r in by_eta[1:]:
        assert r.predicted_start >= by_eta[0].predicted_completion - 0.01
        assert r.eta_at + 0.3 < r.answered_at  # it was told, then waited
    # plausible: within a second of when the answers came (one service time is 0.5 s)
    errors = [abs(r.answered_at - r.predicted_completion) for r in by_eta]
    assert max(errors) < 1.0, errors


def test_grpc_ask_sends_the_eta_as_initial_metadata(setup: Setup) -> None:
    # The server sends it before waiting (clients that read initial metadata early, e.g.
    # grpc-go, see it at once); Python's aio client batches a unary call's receive
    # operations, so here it only shows with the reply. AskStream is the way to get the ETA
    # first from any client.
    async def run() -> tuple[dict[str, str], float, float, gateway_pb2.AskReply]:
        async with grpc.aio.insecure_channel(setup.gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            busy = asyncio.create_task(_ask_stream(stub, setup, "acme", "first"))
            await asyncio.sleep(0.1)
            call = stub.Ask(_request("second"), metadata=setup.metadata("acme"), timeout=60)
            metadata = dict(await call.initial_metadata())
            told = time.time()
            reply = await call
            answered = time.time()
            await busy
            return metadata, told, answered, reply

    metadata, told, answered, reply = asyncio.run(run())
    assert metadata["x-llmproxy-queued"] == "true"
    eta = datetime.fromisoformat(metadata["x-llmproxy-eta"].replace("Z", "+00:00"))
    assert eta.timestamp() == pytest.approx(_at(reply.eta.predicted_completion), abs=1e-3)
    # it waited for the busy slot: predicted to start after the first request's 0.5 s
    assert _at(reply.eta.predicted_start) < _at(reply.eta.predicted_completion)
    assert reply.latency.ToNanoseconds() / 1e9 < answered - told + 1.0
    assert reply.eta.queued and reply.eta.HasField("actual_completion")


def test_the_openai_sdk_sees_the_eta_header_and_the_metadata(setup: Setup) -> None:
    client = openai.OpenAI(base_url=setup.http, api_key=setup.keys["acme"], max_retries=0)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    raw = client.chat.completions.with_raw_response.create(
        model="slow-local", messages=messages, max_tokens=MAX_TOKENS
    )
    completion = raw.parse()
    eta = raw.headers["x-llmproxy-eta"]
    assert eta
    meta = completion.model_extra["llmproxy"]["eta"]
    assert meta["queued"] is True and meta["predicted_completion"] == eta

    # streaming: the headers (ETA included) arrive before any text
    began = time.time()
    with client.chat.completions.with_streaming_response.create(
        model="slow-local", messages=messages, max_tokens=MAX_TOKENS, stream=True
    ) as stream:
        headers_at = time.time()
        assert stream.headers["x-llmproxy-eta"]
        text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
        done_at = time.time()
    assert text.strip()
    assert headers_at - began < done_at - began


def test_one_tenants_burst_does_not_starve_another(setup: Setup) -> None:
    async def run() -> tuple[list[Streamed], Streamed]:
        async with grpc.aio.insecure_channel(setup.gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            burst = []
            for i in range(6):
                burst.append(asyncio.create_task(_ask_stream(stub, setup, "acme", f"b{i}")))
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            single = await _ask_stream(stub, setup, "globex", "just one")
            return list(await asyncio.gather(*burst)), single

    burst, single = asyncio.run(run())
    served_before = sum(1 for r in burst if r.answered_at < single.answered_at)
    # FIFO would serve the whole burst first; per-tenant WFQ serves it after at most two
    # of the burst (the one running when it came, and at most one more)
    assert served_before <= 2, (served_before, [r.answered_at for r in burst], single)
    ahead = sum(1 for r in burst if r.predicted_completion < single.predicted_completion)
    assert ahead <= 2


def test_without_the_scheduler_requests_are_still_answered(setup: Setup) -> None:
    setup.scheduler.kill()
    client = openai.OpenAI(base_url=setup.http, api_key=setup.keys["initech"], max_retries=0)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="slow-local",
            messages=[{"role": "user", "content": "still there?"}],
            max_tokens=MAX_TOKENS,
            timeout=30,
        )
        completion = raw.parse()
        assert completion.choices[0].message.content
        assert completion.model_extra["llmproxy"]["eta"].get("queued") is not True
    assert "serving without the request queue" in setup.gateway.log.read_text()
