"""WhatsApp channel under load: signed webhook POSTs at a fixed rate → every accepted
message answered exactly once; webhook acknowledgement latency.

Starts, on this machine: a private nats-server (JetStream), a database migrated to head
(a SQLite file, or ``--postgres URL`` of an empty PostgreSQL database) with one tenant and
API key, the fake OpenAI-compatible upstream (``llmproxy.gateway.fake_upstream``), the
profiler, context, cache, gateway and whatsapp services as processes, and the fake Graph
API (``tests/support/fake_graph.py``, a thread of this process). Then it posts signed text
messages in the Cloud API's shape at ``--rate`` per second for ``--seconds`` (open loop:
each POST starts at its scheduled time, whatever the previous ones did), re-posting a
share of them as Meta's redeliveries, waits until the channel has answered everything
(or ``--drain-timeout``), and checks every accepted message got exactly one answer.

Ack latency is measured twice: by this client (includes its own scheduling delays on a
shared machine) and by the webhook itself (its Prometheus histogram; bucket bounds, so a
percentile reads "≤ bucket").

    python bench/whatsapp/load.py               # 200 posts/s for 30 s
    python bench/whatsapp/load.py --smoke       # 20 posts/s for 3 s (CI)

Writes ``bench/results/whatsapp_load.json`` (``whatsapp_load_smoke.json`` with --smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.support.fake_graph: the fake Graph API and payloads

from llmproxy.gateway import admin  # noqa: E402
from llmproxy.platform.db import create_engine, session_factory, upgrade  # noqa: E402
from llmproxy.platform.processes import free_port  # noqa: E402
from tests.support.fake_graph import (  # noqa: E402
    PHONE_NUMBER_ID,
    FakeGraphServer,
    notification,
    signed_headers,
    text_message,
)

BIN = Path(sys.executable).parent
SECRET = "bench-app-secret"
SERVICES = ("profiler", "context", "cache", "gateway", "whatsapp")


def _wait(check, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


def _serving(address: str) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=1
        )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


async def _make_key(url: str) -> str:
    await upgrade(url)
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        await admin.create_tenant(sessions, "bench")
        _, key = await admin.create_key(sessions, tenant="bench", app="whatsapp")
        return key
    finally:
        await engine.dispose()


class Stack:
    def __init__(
        self, workdir: Path, graph_url: str, database_url: str, *, webhook_thread: bool = False
    ) -> None:
        self.webhook_thread = webhook_thread
        self.dir = workdir
        self.graph_url = graph_url
        self.database_url = database_url
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.webhook = ""
        self.metrics = ""

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.dir / f"{name}.log").open("wb")
        self.procs.append(
            (name, subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
        )

    def start(self) -> None:
        nats_dir = self.dir / "nats"
        nats_dir.mkdir()
        nats_port = free_port()
        self.spawn("nats", [str(BIN / "nats-server"), "-a", "127.0.0.1", "-p", str(nats_port),
                            "-js", "-sd", str(nats_dir)])  # fmt: skip
        up_port = free_port()
        self.spawn(
            "upstream",
            [sys.executable, "-m", "llmproxy.gateway.fake_upstream", "--port", str(up_port)],
        )
        upstream = f"http://127.0.0.1:{up_port}/v1"
        _wait(lambda: httpx.get(f"{upstream}/stats").status_code == 200, "upstream")
        key = asyncio.run(_make_key(self.database_url))
        catalog = self.dir / "catalog.json"
        catalog.write_text(json.dumps({
            "default_model": "fake-model",
            "reference_model": "fake-model",
            "models": [{"name": "fake-model", "base_url": upstream, "context_window": 8192,
                        "price_per_million": {"input": 0.15, "output": 0.6}}],
        }))  # fmt: skip
        ports = {name: free_port() for name in SERVICES}
        webhook_port, metrics_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROXY_")}
        env.update({
            "NATS_URL": f"nats://127.0.0.1:{nats_port}",
            "DATABASE_URL": self.database_url,
            "LLMPROXY_CATALOG_FILE": str(catalog),
            "LLMPROXY_LOG_LEVEL": "warning",
            **{f"LLMPROXY_{n.upper()}_ADDR": f"127.0.0.1:{p}" for n, p in ports.items()},
        })  # fmt: skip
        whatsapp = {
            "LLMPROXY_WEBHOOK_PORT": str(webhook_port),
            "LLMPROXY_METRICS_PORT": str(metrics_port),
            "LLMPROXY_WHATSAPP_APP_SECRET": SECRET,
            "LLMPROXY_WHATSAPP_VERIFY_TOKEN": "bench",
            "LLMPROXY_WHATSAPP_ACCESS_TOKEN": "bench-token",
            "LLMPROXY_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "LLMPROXY_GRAPH_BASE_URL": self.graph_url,
            "LLMPROXY_GATEWAY_API_KEY": key,
            "LLMPROXY_TENANT_ID": "bench",
            "LLMPROXY_MAX_ANSWER_TOKENS": "64",
            "LLMPROXY_WEBHOOK_OWN_THREAD": "true" if self.webhook_thread else "false",
        }
        for name in SERVICES:
            extra = whatsapp if name == "whatsapp" else {}
            self.spawn(
                name,
                [str(BIN / "llmproxy"), "serve", name],
                {**env, **extra, "LLMPROXY_GRPC_PORT": str(ports[name])},
            )
        for name in SERVICES:
            _wait(lambda n=name: _serving(f"127.0.0.1:{ports[n]}"), name)  # type: ignore[misc]
        self.webhook = f"http://127.0.0.1:{webhook_port}/webhook"
        self.metrics = f"http://127.0.0.1:{metrics_port}/metrics"

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def histogram_percentile(metrics: str, name: str, p: float) -> tuple[float, int]:
    """The smallest bucket bound holding ``p`` % of observations (and the count)."""
    buckets = [
        (float(le), float(count))
        for le, count in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', metrics, re.M)
    ]
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= p / 100 * total:
            return bound, int(total)
    return float("nan"), int(total)


class RawConnection:
    """One keep-alive HTTP/1.1 connection; a bare client costs far less CPU than httpx,
    and the load generator shares the machine's cores with everything it measures."""

    def __init__(self, host: str, port: int) -> None:
        self._addr = (host, port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(*self._addr)
        assert self._reader is not None
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self._reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _request(url: httpx.URL, body: bytes) -> bytes:
    headers = "".join(f"{k}: {v}\r\n" for k, v in signed_headers(body, SECRET).items())
    return (
        f"POST {url.path} HTTP/1.1\r\nhost: {url.host}\r\n{headers}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def load(
    stack: Stack, graph: FakeGraphServer, *, rate: float, seconds: float, users: int,
    redelivery: float, drain_timeout: float, connections: int,
) -> dict[str, Any]:  # fmt: skip
    count = int(rate * seconds)
    every = max(1, round(1 / redelivery)) if redelivery > 0 else 0
    url = httpx.URL(stack.webhook)
    # everything is built before the clock starts: (message id, request, redelivered?)
    plan: list[tuple[str, bytes, bool]] = []
    for i in range(count):
        message = text_message(f"3160{i % users:07d}", f"Question {i}: what is {i} + {i}?",
                               message_id=f"wamid.bench.{i}")  # fmt: skip
        plan.append(
            (message["id"], _request(url, notification([message])), bool(every) and i % every == 0)
        )
    acks: list[float] = []
    lateness: list[float] = []
    statuses: dict[int, int] = {}
    accepted: dict[str, float] = {}
    redelivered = 0
    next_index = 0
    t0 = time.perf_counter() + 0.5

    async def sender() -> None:
        """Posts each next message at its scheduled time (open loop while a connection is
        free; a late post is recorded as lateness)."""
        nonlocal next_index, redelivered
        connection = RawConnection(url.host, url.port or 80)
        try:
            while next_index < count:
                i = next_index
                next_index += 1
                message_id, request, again = plan[i]
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                lateness.append(max(0.0, time.perf_counter() - due))
                started = time.perf_counter()
                try:
                    status = await connection.post(request)
                except (OSError, asyncio.IncompleteReadError):
                    status = 0
                    connection.close()
                    connection = RawConnection(url.host, url.port or 80)
                acks.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    accepted[message_id] = started
                if again:  # Meta delivering the same notification again
                    redelivered += 1
                    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                        await connection.post(request)
        finally:
            connection.close()

    await asyncio.gather(*(sender() for _ in range(connections)))
    load_s = time.perf_counter() - t0
    load_average_end_of_load = [round(x, 2) for x in os.getloadavg()]
    async with httpx.AsyncClient(timeout=30) as client:
        metrics = (await client.get(stack.metrics)).text
    server_p50, observed = histogram_percentile(metrics, "llmproxy_whatsapp_webhook_seconds", 50)
    server_p99, _ = histogram_percentile(metrics, "llmproxy_whatsapp_webhook_seconds", 99)

    # every accepted message answered (its first reply part quotes its id), exactly once
    deadline = time.perf_counter() + drain_timeout
    while True:
        answers: dict[str, list[float]] = {}
        for call in graph.sent():
            quoted = call.body.get("context", {}).get("message_id")
            if quoted:
                answers.setdefault(quoted, []).append(call.at)
        if len(answers) >= len(accepted) or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.5)
    drained_s = time.perf_counter() - t0
    answered_once = sum(1 for mid in accepted if len(answers.get(mid, [])) == 1)
    duplicates = sum(1 for mid in accepted if len(answers.get(mid, [])) > 1)
    unanswered = sum(1 for mid in accepted if mid not in answers)
    answer_s = [answers[m][0] - accepted[m] for m in accepted if m in answers]
    return {
        "posts": count,
        "load_average_end_of_load": load_average_end_of_load,
        "redeliveries": redelivered,
        "load_seconds": round(load_s, 2),
        "achieved_posts_per_s": round(count / load_s, 1) if load_s > 0 else 0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted": len(accepted),
        "answered_once": answered_once,
        "answered_more_than_once": duplicates,
        "unanswered": unanswered,
        "all_answered_once": answered_once == len(accepted) and duplicates == 0,
        "drained_after_s": round(drained_s, 1),
        "answers_per_s": round(len(answers) / drained_s, 1) if drained_s else 0,
        "ack_client_ms": {"p50": round(pct(acks, 50) * 1000, 2),
                          "p99": round(pct(acks, 99) * 1000, 2),
                          "max": round(max(acks) * 1000, 2) if acks else None},
        "ack_server_ms_bucket": {"p50_le": server_p50 * 1000, "p99_le": server_p99 * 1000,
                                 "observed": observed},
        "client_lateness_ms_p99": round(pct(lateness, 99) * 1000, 2),
        "answer_s": {"p50": round(pct(answer_s, 50), 2), "p99": round(pct(answer_s, 99), 2)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="webhook posts per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=1000, help="distinct WhatsApp users")
    parser.add_argument("--redelivery", type=float, default=0.05,
                        help="share of notifications Meta delivers twice")  # fmt: skip
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--connections", type=int, default=64, help="client connections")
    parser.add_argument("--postgres", default="", help="an empty PostgreSQL database URL")
    parser.add_argument("--smoke", action="store_true", help="20 posts/s for 3 s")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--webhook-thread",
        action="store_true",
        help="serve the webhook on a loop of its own in a thread (LLMPROXY_WEBHOOK_OWN_THREAD)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.rate, args.seconds, args.drain_timeout = 20.0, 3.0, 120.0
    name = "whatsapp_load_smoke.json" if args.smoke else "whatsapp_load.json"
    out = args.out or ROOT / "bench" / "results" / name
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, FakeGraphServer() as graph:
        workdir = Path(tmp)
        database = args.postgres or f"sqlite:///{workdir / 'bench.db'}"
        stack = Stack(workdir, graph.base_url, database, webhook_thread=args.webhook_thread)
        try:
            stack.start()
            result = asyncio.run(
                load(stack, graph, rate=args.rate, seconds=args.seconds, users=args.users,
                     redelivery=args.redelivery, drain_timeout=args.drain_timeout,
                     connections=args.connections)
            )  # fmt: skip
        finally:
            stack.stop()
    document = {
        "benchmark": "whatsapp_load",
        "command": "python bench/whatsapp/load.py " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; shared with other work",
        "load_average_before": round(load_before, 2),
        "webhook": "own thread and loop" if args.webhook_thread else "on the service's loop",
        "database": "postgresql" if args.postgres else "sqlite",
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "users": args.users,
        "connections": args.connections,
        "targets": {"ack_p99_ms": 50, "every_accepted_answered_once": True},
        "result": result,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    r = result
    rows = [
        ("posts (redelivered)", f"{r['posts']} ({r['redeliveries']})"),
        ("achieved posts/s (late p99 ms)",
         f"{r['achieved_posts_per_s']} ({r['client_lateness_ms_p99']})"),
        ("HTTP statuses", json.dumps(r["statuses"])),
        ("accepted / answered once", f"{r['accepted']} / {r['answered_once']}"),
        ("answered twice / unanswered", f"{r['answered_more_than_once']} / {r['unanswered']}"),
        ("ack p50 / p99 ms (client)", f"{r['ack_client_ms']['p50']} / {r['ack_client_ms']['p99']}"),
        ("ack p50 / p99 ms (server, ≤ bucket)",
         f"{r['ack_server_ms_bucket']['p50_le']:g} / {r['ack_server_ms_bucket']['p99_le']:g}"),
        ("drained after s / answers per s", f"{r['drained_after_s']} / {r['answers_per_s']}"),
        ("answer latency p50 / p99 s", f"{r['answer_s']['p50']} / {r['answer_s']['p99']}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print(f"whatsapp load: {args.rate:g} posts/s for {args.seconds:g} s, {document['database']}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
