"""Gateway overhead: added latency (p50, p99) and requests/s over calling the upstream directly.

Starts, on this machine: a private nats-server (JetStream), a SQLite database migrated to
head with one tenant and API key, the fake OpenAI-compatible upstream that answers at
once (``llmproxy.gateway.fake_upstream``), the profiler (consumes ``llm.completed``), the
cache and the gateway (gRPC + HTTP) as processes. Then, for 1, 16 and 128 concurrent
clients, it measures the upstream directly, the gateway's HTTP path and its gRPC path
with the cache off (every request reaches the upstream), and both paths answering one
repeated question from the cache ("-cached": the cached answer's latency). Each point
also records the CPU milliseconds each process spent per request. The load
generator is a bare asyncio HTTP/1.1 client (and grpc.aio), in this process, so it
shares the machine's cores with everything it measures.

    python bench/gateway/overhead.py            # 6 s per point
    python bench/gateway/overhead.py --smoke    # 1 s per point (CI)
    python bench/gateway/overhead.py --profile  # also cProfile the gateway (top functions)

Writes ``bench/results/gateway_overhead[_smoke].json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import httpx

from llmproxy.gateway import admin
from llmproxy.platform.db import create_engine, session_factory, upgrade
from llmproxy.platform.processes import free_port
from llmproxy.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BODY = {
    "model": "fake-model",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 16,
}


# -- a minimal keep-alive HTTP/1.1 client: the load generator must cost little ------------


class RawHttp:
    def __init__(self, host: str, port: int, path: str, body: bytes, headers: dict[str, str]):
        self._addr = (host, port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._request = (
            f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"{extra}content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(self) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(*self._addr)
        assert self._reader is not None
        self._writer.write(self._request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self._reader.readexactly(length)
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _run_point(  # type: ignore[no-untyped-def]
    call_factory, concurrency: int, seconds: float, pids: dict[str, int] | None = None
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal errors
        call, close = call_factory()
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                ok = await call()
                latencies.append(time.perf_counter() - started)
                errors += not ok
        finally:
            close()

    # warm-up: connections, caches
    warm_call, warm_close = call_factory()
    for _ in range(20):
        if not await warm_call():
            raise SystemExit("warm-up call failed: is the stack healthy?")
    warm_close()
    pids = pids or {}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    # CPU time per request barely depends on what else the machine runs, unlike latency:
    # it bounds the throughput the stack can reach on its cores.
    cpu_ms = {
        f"{name}_cpu_ms_per_req": round(
            (cpu_seconds(pid) - cpu_before[name]) * 1000 / max(1, len(latencies)), 3
        )
        for name, pid in pids.items()
    }
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        **cpu_ms,
    }


# -- the stack ------------------------------------------------------------------------------


def _wait(check, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
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
        _, key = await admin.create_key(sessions, tenant="bench", app="load")
        return key
    finally:
        await engine.dispose()


class Stack:
    def __init__(self, workdir: Path, profile: bool) -> None:
        self.dir = workdir
        self.profile = profile
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.dir / f"{name}.log").open("wb")
        self.procs.append(
            (name, subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
        )

    def start(self) -> dict[str, Any]:
        nats_dir = self.dir / "nats"
        nats_dir.mkdir()
        nats_port = free_port()
        self.spawn(
            "nats",
            [
                str(BIN / "nats-server"),
                "-a",
                "127.0.0.1",
                "-p",
                str(nats_port),
                "-js",
                "-sd",
                str(nats_dir),
            ],
        )
        up_port = free_port()
        self.spawn(
            "upstream",
            [sys.executable, "-m", "llmproxy.gateway.fake_upstream", "--port", str(up_port)],
        )
        upstream = f"http://127.0.0.1:{up_port}/v1"
        _wait(lambda: httpx.get(f"{upstream}/stats").status_code == 200, "upstream")
        db = f"sqlite:///{self.dir / 'bench.db'}"
        key = asyncio.run(_make_key(db))
        catalog = self.dir / "catalog.json"
        catalog.write_text(
            json.dumps(
                {
                    "default_model": "fake-model",
                    "reference_model": "fake-model",
                    "models": [
                        {
                            "name": "fake-model",
                            "base_url": upstream,
                            "context_window": 8192,
                            "price_per_million": {"input": 0.15, "output": 0.6},
                        }
                    ],
                }
            )
        )
        grpc_port, http_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROXY_")}
        env.update(
            {
                "NATS_URL": f"nats://127.0.0.1:{nats_port}",
                "DATABASE_URL": db,
                "LLMPROXY_CATALOG_FILE": str(catalog),
                "LLMPROXY_LOG_LEVEL": "warning",
            }
        )
        profiler_port = free_port()
        self.spawn(
            "profiler",
            [str(BIN / "llmproxy"), "serve", "profiler"],
            {**env, "LLMPROXY_GRPC_PORT": str(profiler_port)},
        )
        cache_port = free_port()
        self.spawn(
            "cache",
            [str(BIN / "llmproxy"), "serve", "cache"],
            {**env, "LLMPROXY_GRPC_PORT": str(cache_port)},
        )
        env["LLMPROXY_CACHE_ADDR"] = f"127.0.0.1:{cache_port}"
        gateway = [sys.executable, "-m", "llmproxy.cli", "serve", "gateway"]
        if self.profile:
            gateway = [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(self.dir / "gateway.prof"),
                "-m",
                "llmproxy.cli",
                "serve",
                "gateway",
            ]
        self.spawn(
            "gateway",
            gateway,
            {**env, "LLMPROXY_GRPC_PORT": str(grpc_port), "LLMPROXY_HTTP_PORT": str(http_port)},
        )
        _wait(lambda: _serving(f"127.0.0.1:{profiler_port}"), "profiler")
        _wait(lambda: _serving(f"127.0.0.1:{cache_port}"), "cache", timeout=120)
        _wait(lambda: _serving(f"127.0.0.1:{grpc_port}"), "gateway")
        return {
            "upstream_port": up_port,
            "http_port": http_port,
            "grpc": f"127.0.0.1:{grpc_port}",
            "key": key,
            "pids": {name: proc.pid for name, proc in self.procs if name != "nats"}
            | {"nats": self.procs[0][1].pid},
        }

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- the measurement --------------------------------------------------------------------------


async def measure(info: dict[str, Any], seconds: float, levels: list[int]) -> list[dict[str, Any]]:
    body = json.dumps(BODY).encode()
    auth = {"authorization": f"Bearer {info['key']}"}
    # The overhead rows ask with the cache off (every request reaches the upstream); the
    # "cached" rows repeat one question, answered from the cache after the first time.
    uncached = {**auth, "x-llmproxy-cache": "off"}
    cached_body = json.dumps({**BODY, "messages": [{"role": "user", "content": "Cached?"}]})

    def direct():  # type: ignore[no-untyped-def]
        client = RawHttp("127.0.0.1", info["upstream_port"], "/v1/chat/completions", body, {})

        async def call() -> bool:
            return await client.call() == 200

        return call, client.close

    def http():  # type: ignore[no-untyped-def]
        client = RawHttp("127.0.0.1", info["http_port"], "/v1/chat/completions", body, uncached)

        async def call() -> bool:
            return await client.call() == 200

        return call, client.close

    def http_cached():  # type: ignore[no-untyped-def]
        client = RawHttp(
            "127.0.0.1", info["http_port"], "/v1/chat/completions", cached_body.encode(), auth
        )

        async def call() -> bool:
            return await client.call() == 200

        return call, client.close

    channel = grpc.aio.insecure_channel(info["grpc"])
    stub = gateway_pb2_grpc.GatewayStub(channel)
    request = gateway_pb2.AskRequest(
        messages=[
            common_pb2.Message(role=common_pb2.ROLE_USER, content=BODY["messages"][0]["content"])
        ],  # type: ignore[index]
        generation=common_pb2.GenerationParams(max_tokens=16),
        cache=common_pb2.CachePolicy(mode=common_pb2.CACHE_MODE_OFF),
    )
    cached_request = gateway_pb2.AskRequest(
        messages=[common_pb2.Message(role=common_pb2.ROLE_USER, content="Cached?")],
        generation=common_pb2.GenerationParams(max_tokens=16),
    )
    metadata = (("authorization", auth["authorization"]),)

    def grpc_path():  # type: ignore[no-untyped-def]
        async def call() -> bool:
            reply = await stub.Ask(request, metadata=metadata, timeout=30)
            return bool(reply.answer)

        return call, lambda: None

    def grpc_cached():  # type: ignore[no-untyped-def]
        async def call() -> bool:
            reply = await stub.Ask(cached_request, metadata=metadata, timeout=30)
            return reply.cache.outcome == common_pb2.CACHE_OUTCOME_EXACT_HIT

        return call, lambda: None

    # the first ask stores the answer (the cache consumes llm.completed); wait until it hits
    deadline = time.monotonic() + 30
    while not await grpc_cached()[0]():
        if time.monotonic() > deadline:
            raise SystemExit("the cached question never became a cache hit")
        await asyncio.sleep(0.2)

    rows = []
    for concurrency in levels:
        base = await _run_point(direct, concurrency, seconds)
        paths = (
            ("http", http),
            ("grpc", grpc_path),
            ("http-cached", http_cached),
            ("grpc-cached", grpc_cached),
        )
        for path, factory in paths:
            point = await _run_point(factory, concurrency, seconds, info["pids"])
            rows.append(
                {
                    "path": path,
                    "concurrency": concurrency,
                    **point,
                    "direct_p50_ms": base["p50_ms"],
                    "direct_p99_ms": base["p99_ms"],
                    "direct_rps": base["rps"],
                    "added_p50_ms": round(point["p50_ms"] - base["p50_ms"], 3),
                    "added_p99_ms": round(point["p99_ms"] - base["p99_ms"], 3),
                }
            )
            row = rows[-1]
            print(
                f"  {path:<11} c={concurrency:<4} {row['rps']:>8} req/s  "
                f"added p50 {row['added_p50_ms']:>7} ms  p99 {row['added_p99_ms']:>7} ms  "
                f"gateway CPU {row.get('gateway_cpu_ms_per_req')} ms/req",
                flush=True,
            )
    await channel.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="1 s per point")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile the gateway")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.smoke else 6.0)
    levels = [1, 16, 128]
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), args.profile)
        try:
            info = stack.start()
            rows = asyncio.run(measure(info, seconds, levels))
        finally:
            stack.stop()
        top: list[str] = []
        if args.profile and (Path(tmp) / "gateway.prof").exists():
            if os.environ.get("BENCH_KEEP_PROFILE"):
                Path(os.environ["BENCH_KEEP_PROFILE"]).write_bytes(
                    (Path(tmp) / "gateway.prof").read_bytes()
                )
            stats = pstats.Stats(str(Path(tmp) / "gateway.prof"))
            stats.sort_stats("tottime")
            _width, entries = stats.get_print_list([25])  # type: ignore[attr-defined]
            for func in entries:
                _cc, _nc, tt, ct, _ = stats.stats[func]  # type: ignore[attr-defined]
                where = f"{func[0].split('site-packages/')[-1]}:{func[1]}({func[2]})"
                top.append(f"{tt:8.2f}s self {ct:8.2f}s cum  {where}")
    result = {
        "benchmark": "gateway_overhead",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "seconds_per_point": seconds,
        "command": " ".join(["python", "bench/gateway/overhead.py", *sys.argv[1:]]),
        "rows": rows,
        "profile_top_self_time": top,
    }
    out = (
        args.out
        or ROOT / "bench" / "results" / f"gateway_overhead{'_smoke' if args.smoke else ''}.json"
    )
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        "\n| path | clients | req/s | p50 ms | p99 ms | direct p50 | added p50 | added p99 "
        "| gateway CPU ms/req | stack CPU ms/req |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        stack_cpu = sum(v for k, v in r.items() if k.endswith("_cpu_ms_per_req"))
        print(
            f"| {r['path']} | {r['concurrency']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['direct_p50_ms']} | {r['added_p50_ms']} | {r['added_p99_ms']} | "
            f"{r.get('gateway_cpu_ms_per_req')} | {round(stack_cpu, 3)} |"
        )
    if top:
        print("\nGateway profile (top self time):\n" + "\n".join(top))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
