"""Observability of a running stack: Prometheus ``/metrics`` of each service, OpenTelemetry
traces exported over OTLP/HTTP across processes, and the Grafana dashboard's series.

Real processes (``llmproxy serve``): context, cache, scheduler, whatsapp (operator API) and
the gateway (gRPC + HTTP), on NATS and SQLite, against the fake OpenAI upstream. Each
serves ``/metrics`` (``LLMPROXY_METRICS_PORT``) and exports spans to a collector this test
runs (``OTEL_EXPORTER_OTLP_ENDPOINT``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from llmproxy.platform.processes import free_port
from llmproxy.v1 import gateway_pb2, gateway_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc
from tests.support.services import ServiceProcess, service_env, start_together
from tests.unit.platform.test_dashboard import DASHBOARD, family, panel_queries

pytestmark = pytest.mark.nats

SERVICES = ("context", "cache", "scheduler", "whatsapp", "gateway")
CATALOG = {
    "default_model": "fake-small",
    "reference_model": "fake-large",
    "models": [
        {"name": "fake-small", "provider": "openai-compatible", "context_window": 8192,
         "quality": 0.5, "price_per_million": {"input": 1.0, "output": 2.0}},
        {"name": "fake-large", "provider": "openai-compatible", "context_window": 8192,
         "quality": 0.9, "price_per_million": {"input": 5.0, "output": 15.0}},
    ],
}  # fmt: skip


@dataclass
class Collector:
    """An OTLP/HTTP trace receiver: every span it got, with its service's name."""

    spans: list[tuple[str, bytes, str]] = field(default_factory=list)  # service, trace id, name
    lock: threading.Lock = field(default_factory=threading.Lock)

    def traces(self) -> dict[bytes, set[tuple[str, str]]]:
        found: dict[bytes, set[tuple[str, str]]] = defaultdict(set)
        with self.lock:
            for service, trace_id, name in self.spans:
                found[trace_id].add((service, name))
        return found


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    received = Collector()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            request = ExportTraceServiceRequest.FromString(body)
            with received.lock:
                for resource_spans in request.resource_spans:
                    service = next(
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    )
                    for scope in resource_spans.scope_spans:
                        for span in scope.spans:
                            received.spans.append((service, span.trace_id, span.name))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield received, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@dataclass
class Stack:
    services: dict[str, ServiceProcess]
    metrics: dict[str, int]
    http: str

    def families(self, name: str) -> set[str]:
        """Metric families one service's /metrics declares (counters without ``_total``),
        with or without samples yet."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics[name]}/metrics", timeout=10).text
        return {metric.name for metric in text_string_to_metric_families(text)}

    def scrape(self, name: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """{sample name: {sorted labels: value}} of one service's /metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics[name]}/metrics", timeout=10).text
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        for metric in text_string_to_metric_families(text):
            for sample in metric.samples:
                samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
        return samples


@pytest.fixture
def stack(
    nats_url: str, sqlite_db_url: str, tmp_path: Path, collector: tuple[Collector, str]
) -> Iterator[Stack]:
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "llmproxy.gateway.fake_upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    catalog = json.loads(json.dumps(CATALOG))
    for model in catalog["models"]:
        model["base_url"] = f"http://127.0.0.1:{port}/v1"
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    http_port = free_port()
    env = service_env(
        NATS_URL=nats_url,
        DATABASE_URL=sqlite_db_url,
        LLMPROXY_CATALOG_FILE=str(tmp_path / "catalog.json"),
        LLMPROXY_ALLOW_ANONYMOUS="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector[1],
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    services = {name: ServiceProcess(name, env, tmp_path / f"{name}.log") for name in SERVICES}
    metrics = {name: free_port() for name in SERVICES}
    addresses = {f"LLMPROXY_{n.upper()}_ADDR": s.address for n, s in services.items()}
    for name, service in services.items():
        service.env = {**env, **addresses, "LLMPROXY_METRICS_PORT": str(metrics[name])}
    services["gateway"].env["LLMPROXY_HTTP_PORT"] = str(http_port)
    try:
        start_together(services)
        yield Stack(services, metrics, f"http://127.0.0.1:{http_port}/v1")
    finally:
        for service in services.values():
            if service.process is not None and service.process.poll() is None:
                service.terminate()
        upstream.terminate()
        upstream.wait(10)


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _value(samples: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for k, v in samples.get(name, {}).items() if wanted <= set(k))


def test_metrics_traces_and_dashboard_series_of_a_running_stack(
    stack: Stack, collector: tuple[Collector, str]
) -> None:
    question = {"model": "fake-small", "messages": [{"role": "user", "content": "Capital?"}]}

    def ask() -> str:
        response = httpx.post(f"{stack.http}/chat/completions", json=question, timeout=30)
        assert response.status_code == 200, response.text
        return response.headers["x-llmproxy-cache"]

    assert ask() == "miss"
    _wait(lambda: ask() == "exact_hit", "a cache hit (the cache stores from llm.completed)")
    with grpc.insecure_channel(stack.services["gateway"].address) as channel:
        reply = gateway_pb2_grpc.GatewayStub(channel).Ask(
            gateway_pb2.AskRequest(prompt="Name a river."), timeout=30
        )
    assert reply.answer
    with grpc.insecure_channel(stack.services["scheduler"].address) as channel:
        scheduler = scheduler_pb2_grpc.SchedulerStub(channel)
        scheduler.RegisterExecutor(
            scheduler_pb2.RegisterExecutorRequest(
                executor_id="obs-1", pool="obs", gpus=1, kind="simulated"
            ),
            timeout=10,
        )
        for _ in range(3):  # one runs, two wait
            scheduler.SubmitJob(
                scheduler_pb2.SubmitJobRequest(
                    kind=scheduler_pb2.JOB_KIND_GPU, pool="obs", gpu_demand=1, size_seconds=600
                ),
                timeout=10,
            )

    # -- Prometheus: the list, each with a sample that moved ------------------------
    gateway = stack.scrape("gateway")
    assert _value(gateway, "llmproxy_ask_requests_total", outcome="answered") >= 2
    assert _value(gateway, "llmproxy_ask_requests_total", outcome="cache_hit") >= 1
    assert _value(gateway, "llmproxy_ask_seconds_count") >= 3  # latency
    assert _value(gateway, "llmproxy_ask_seconds_bucket", le="+Inf") >= 3
    assert _value(gateway, "llmproxy_cost_nanousd_total", model="fake-small") > 0  # cost
    assert _value(gateway, "llmproxy_saved_nanousd_total") > 0
    hits = _value(gateway, "llmproxy_cache_lookups_total", outcome="exact_hit")
    lookups = _value(gateway, "llmproxy_cache_lookups_total")
    assert hits >= 1 and lookups > hits  # the hit ratio's two halves
    assert _value(gateway, "llmproxy_tokens_saved_total", source="cache") >= 19  # 12 in + 7 out
    assert _value(gateway, "llmproxy_http_requests_total", server="http", status="200") >= 2
    assert _value(gateway, "llmproxy_http_request_seconds_count", server="http") >= 2
    assert _value(gateway, "llmproxy_grpc_requests_total", method="/llmproxy.v1.Gateway/Ask",
                  code="OK") == 1  # fmt: skip
    scheduler_samples = stack.scrape("scheduler")
    assert _value(scheduler_samples, "llmproxy_scheduler_jobs", pool="obs", state="queued") == 2
    assert _value(scheduler_samples, "llmproxy_scheduler_jobs", pool="obs", state="running") == 1
    assert "llmproxy_scheduler_eta_error_percent_count" in scheduler_samples
    assert "llmproxy_scheduler_eta_error_seconds_count" in scheduler_samples

    # -- the dashboard plots only series some service exports --------------------------------
    exported = {name for n in SERVICES for name in stack.families(n)}
    queries = panel_queries(json.loads(DASHBOARD.read_text()))
    plotted = {family(n) for exprs in queries.values() for e in exprs
               for n in re.findall(r"\bllmproxy_[a-z0-9_]+", e)}  # fmt: skip
    assert plotted - exported == set(), sorted(plotted - exported)

    # -- traces: one trace through gateway, context, cache and the provider ------------------
    wanted = {"llmproxy-gateway", "llmproxy-context", "llmproxy-cache"}

    def traced() -> bool:
        for spans in collector[0].traces().values():
            services = {service for service, _ in spans}
            names = {name for _, name in spans}
            if (
                wanted <= services
                and "llmproxy.v1.Gateway/Ask" in names
                and "provider fake-small" in names
            ):
                return True
        return False

    _wait(traced, "one exported trace spanning gateway, context, cache and provider")
