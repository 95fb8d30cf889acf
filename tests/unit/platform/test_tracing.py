"""One request is one trace: gateway → context → cache → provider.

The gateway's real gRPC servicer and request path (``AskFlow``) call a context and a cache
service over real gRPC (loopback) through ``service_channel`` — the channels the product
uses — and every server carries the runtime's own interceptors. Spans go to an in-memory
exporter; the test reads the tree back: one trace id, and each span the child of the one
that caused it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from llmproxy.cache.client import GrpcCacheClient
from llmproxy.gateway.access import Authenticator, Caller
from llmproxy.gateway.ask import AskFlow
from llmproxy.gateway.catalog import load_catalog
from llmproxy.gateway.context_client import GrpcContextClient
from llmproxy.gateway.providers.fake import FakeProvider
from llmproxy.gateway.servicer import GatewayServicer
from llmproxy.platform.bus.memory import InMemoryBus
from llmproxy.platform.connect import service_channel
from llmproxy.platform.runtime import server_interceptors
from llmproxy.platform.tracing import (
    TracingAsgiMiddleware,
    build_tracer_provider,
    client_interceptors,
    tracer,
)
from llmproxy.v1 import (
    cache_pb2,
    cache_pb2_grpc,
    common_pb2,
    context_pb2,
    context_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
)

LOCAL = "smollm2-135m-instruct"
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider (installed once) exporting to memory, emptied per test."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_llmproxy_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._llmproxy_test_exporter = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


class Context(context_pb2_grpc.ContextServicer):
    async def BuildContext(
        self, request: context_pb2.BuildContextRequest, context: grpc.aio.ServicerContext
    ) -> context_pb2.BuildContextReply:
        return context_pb2.BuildContextReply(
            messages=[common_pb2.Message(role=common_pb2.ROLE_USER, content=request.prompt)],
            report=common_pb2.ContextReport(strategy=common_pb2.CONTEXT_STRATEGY_FULL),
            conversation_id="conv-1",
        )


class Cache(cache_pb2_grpc.CacheServicer):
    async def Lookup(
        self, request: cache_pb2.CacheLookupRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.CacheLookupReply:
        return cache_pb2.CacheLookupReply(
            report=common_pb2.CacheReport(outcome=common_pb2.CACHE_OUTCOME_MISS), cache_key="k"
        )


class _NoKeys:
    async def find_key(self, key_id: str) -> None:
        return None


async def _serve(add) -> tuple[grpc.aio.Server, str]:  # type: ignore[no-untyped-def]
    server = grpc.aio.server(interceptors=server_interceptors())
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _gateway() -> AsyncIterator[str]:
    context, context_addr = await _serve(
        lambda s: context_pb2_grpc.add_ContextServicer_to_server(Context(), s)
    )
    cache, cache_addr = await _serve(
        lambda s: cache_pb2_grpc.add_CacheServicer_to_server(Cache(), s)
    )
    to_context, to_cache = service_channel(context_addr), service_channel(cache_addr)
    bus = InMemoryBus()
    flow = AskFlow(
        catalog=load_catalog(None, environ={}),
        providers={LOCAL: FakeProvider(LOCAL, answer="Paris.")},
        context=GrpcContextClient(to_context),
        cache=GrpcCacheClient(to_cache, timeout_s=5),
        bus=bus,
    )
    auth = Authenticator(_NoKeys(), anonymous=Caller("acme", "web"))
    servicer = GatewayServicer(flow, auth, bus=bus, ledger=None)  # type: ignore[arg-type]
    gateway, gateway_addr = await _serve(
        lambda s: gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, s)
    )
    try:
        yield gateway_addr
    finally:
        await flow.drain()
        for server in (gateway, context, cache):
            await server.stop(0)
        for channel in (to_context, to_cache):
            await channel.close()


async def _finished(
    exporter: InMemorySpanExporter, count: int, timeout_s: float = 5
) -> list[ReadableSpan]:
    """The spans once ``count`` have ended (server spans end just after the reply is sent)."""
    for _ in range(int(timeout_s / 0.02)):
        if len(exporter.get_finished_spans()) >= count:
            break
        await asyncio.sleep(0.02)
    return list(exporter.get_finished_spans())


def _one(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, (name, kind, [(s.name, s.kind) for s in spans])
    return found[0]


@pytest.mark.parametrize("method", ["Ask", "AskStream"])
async def test_one_trace_across_gateway_context_cache_and_provider(
    spans: InMemorySpanExporter, method: str
) -> None:
    async for address in _gateway():
        async with grpc.aio.insecure_channel(address) as channel:
            stub = gateway_pb2_grpc.GatewayStub(channel)
            request = gateway_pb2.AskRequest(prompt="What is the capital of France?")
            if method == "Ask":
                reply = await stub.Ask(request, timeout=10)
            else:
                reply = [c async for c in stub.AskStream(request, timeout=10)][-1].final
        assert reply.answer == "Paris."
        finished = await _finished(spans, 6)

    gateway = _one(finished, f"llmproxy.v1.Gateway/{method}", SpanKind.SERVER)
    to_context = _one(finished, "llmproxy.v1.Context/BuildContext", SpanKind.CLIENT)
    in_context = _one(finished, "llmproxy.v1.Context/BuildContext", SpanKind.SERVER)
    to_cache = _one(finished, "llmproxy.v1.Cache/Lookup", SpanKind.CLIENT)
    in_cache = _one(finished, "llmproxy.v1.Cache/Lookup", SpanKind.SERVER)
    provider = _one(finished, f"provider {LOCAL}", SpanKind.CLIENT)
    tree = [gateway, to_context, in_context, to_cache, in_cache, provider]
    assert len({s.context.trace_id for s in tree}) == 1, "more than one trace"
    assert gateway.parent is None  # the caller sent no trace context: the gateway starts it
    # each span is the child of the one that caused it (the W3C context crossed gRPC)
    assert to_context.parent.span_id == gateway.context.span_id  # type: ignore[union-attr]
    assert in_context.parent.span_id == to_context.context.span_id  # type: ignore[union-attr]
    assert to_cache.parent.span_id == gateway.context.span_id  # type: ignore[union-attr]
    assert in_cache.parent.span_id == to_cache.context.span_id  # type: ignore[union-attr]
    assert provider.parent.span_id == gateway.context.span_id  # type: ignore[union-attr]
    assert provider.attributes["gen_ai.request.model"] == LOCAL
    assert provider.attributes["llmproxy.streaming"] is (method == "AskStream")
    assert gateway.attributes["rpc.grpc.status_code"] == 0
    # order: context, then cache, then the provider
    assert to_context.end_time <= to_cache.start_time <= to_cache.end_time <= provider.start_time


async def test_a_callers_trace_continues_and_an_error_status_is_recorded(
    spans: InMemorySpanExporter,
) -> None:
    async for address in _gateway():
        with tracer().start_as_current_span("caller") as caller:
            async with grpc.aio.insecure_channel(
                address, interceptors=client_interceptors()
            ) as channel:
                stub = gateway_pb2_grpc.GatewayStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Ask(gateway_pb2.AskRequest(prompt="   "), timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finished = await _finished(spans, 3)
    gateway = _one(finished, "llmproxy.v1.Gateway/Ask", SpanKind.SERVER)
    assert gateway.context.trace_id == caller.get_span_context().trace_id
    assert gateway.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not gateway.status.is_ok


def test_http_requests_get_a_server_span_that_continues_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    async def hello(request) -> PlainTextResponse:  # type: ignore[no-untyped-def]
        return PlainTextResponse("hi", status_code=201)

    app = TracingAsgiMiddleware(Starlette(routes=[Route("/v1/x", hello, methods=["POST"])]))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with TestClient(app) as client:
        response = client.post(
            "/v1/x", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        )
    assert response.status_code == 201
    (span,) = spans.get_finished_spans()
    assert span.name == "POST /v1/x" and span.kind == SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.attributes["http.response.status_code"] == 201
    counted = REGISTRY.get_sample_value(
        "llmproxy_http_requests_total", {"server": "http", "method": "POST", "status": "201"}
    )
    assert counted is not None and counted >= 1


def test_spans_go_to_the_otlp_http_endpoint_when_one_is_configured() -> None:
    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = build_tracer_provider(
            service="gateway",
            instance="i-1",
            endpoint=f"http://127.0.0.1:{server.server_port}",
        )
        with provider.get_tracer("test").start_as_current_span("exported"):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    assert [path for path, _ in received] == ["/v1/traces"]
    request = ExportTraceServiceRequest.FromString(received[0][1])
    (resource_spans,) = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "llmproxy-gateway"
    assert [s.name for s in resource_spans.scope_spans[0].spans] == ["exported"]
    # and without an endpoint nothing is exported, yet spans (and their ids) are made
    quiet = build_tracer_provider(service="gateway", instance="i-1")
    with quiet.get_tracer("test").start_as_current_span("kept") as span:
        assert span.get_span_context().is_valid
    quiet.shutdown()


def test_without_an_endpoint_nothing_is_recorded_but_a_callers_trace_passes_through() -> None:
    # a fresh interpreter: this one has a recording provider installed by the tests above
    script = """
from opentelemetry import propagate, trace
from llmproxy.platform.tracing import configure_tracing, tracer
assert configure_tracing(service="gateway", instance="i-1", endpoint=None) is None
incoming = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
span = tracer().start_span("rpc", context=propagate.extract(incoming))
assert not span.is_recording()
outgoing = {}
propagate.inject(outgoing, context=trace.set_span_in_context(span))
print(outgoing["traceparent"])
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
