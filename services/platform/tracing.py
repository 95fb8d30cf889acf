"""OpenTelemetry traces: one tracer provider per process, the W3C trace context carried in
gRPC metadata and HTTP headers, so one request is one trace across its services
(gateway → context → cache → provider).

* :func:`configure_tracing` — called once by the runtime: when ``OTEL_EXPORTER_OTLP_ENDPOINT``
  is set (settings: ``otel_endpoint``), an SDK tracer provider naming the service batches
  spans to that OTLP/HTTP collector. Otherwise the API's no-op tracer stays: nothing is
  recorded (no cost on the request path), yet a caller's trace context still passes
  through this process to the services it calls.
* :class:`TracingServerInterceptor` — a SERVER span per RPC, child of the caller's
  ``traceparent`` metadata; :func:`client_interceptors` — a CLIENT span per outgoing RPC
  that puts its ``traceparent`` into the call's metadata.
* :class:`TracingAsgiMiddleware` — a SERVER span per HTTP request (the gateway's OpenAI
  API, the WhatsApp webhook), child of an incoming ``traceparent`` header, and the HTTP
  request metrics (``llmproxy_http_requests_total``, ``llmproxy_http_request_seconds``).
* :func:`provider_span` — a CLIENT span around one call of a model provider.

Tracing must never cost an answer: nothing here raises into the request path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram

__all__ = [
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "TracingAsgiMiddleware",
    "TracingServerInterceptor",
    "build_tracer_provider",
    "client_interceptors",
    "configure_tracing",
    "provider_span",
    "tracer",
]

_TRACER_NAME = "llmproxy"
#: the OTLP/HTTP path of traces under a collector's base URL (what the SDK appends itself
#: when it reads OTEL_EXPORTER_OTLP_ENDPOINT)
_TRACES_PATH = "/v1/traces"


def tracer() -> trace.Tracer:
    """The project's tracer (from whichever provider is installed, looked up per use)."""
    return trace.get_tracer(_TRACER_NAME)


def configure_tracing(
    *, service: str, instance: str, endpoint: str | None = None
) -> TracerProvider | None:
    """Install this process's tracer provider (see :func:`build_tracer_provider`) and return
    it (``shutdown()`` exports what is still batched); None, and nothing installed, without
    an ``endpoint``."""
    if not endpoint:
        return None
    provider = build_tracer_provider(service=service, instance=instance, endpoint=endpoint)
    trace.set_tracer_provider(provider)
    return provider


def build_tracer_provider(
    *,
    service: str,
    instance: str,
    endpoint: str | None = None,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """A tracer provider naming the service (``llmproxy-<service>``).

    ``endpoint`` is an OTLP/HTTP collector's base URL (``http://collector:4318``); spans
    are batched to ``<endpoint>/v1/traces``. ``exporter`` replaces that (tests). With
    neither, spans are made (so trace ids propagate) but not exported.
    """
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": f"llmproxy-{service}", "service.instance.id": instance}
        )
    )
    if exporter is None and endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = endpoint.rstrip("/")
        exporter = OTLPSpanExporter(
            endpoint=url if url.endswith(_TRACES_PATH) else url + _TRACES_PATH
        )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


# -- gRPC -------------------------------------------------------------------------------


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _end_rpc_span(span: Span, code: grpc.StatusCode | None) -> None:
    code = code or grpc.StatusCode.OK
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


class TracingServerInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span around every RPC (unary and server-streaming), child of the caller's.

    Installed outside the boundary interceptor: the span sees the final status code.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith("/grpc."):
            return handler  # health checks and reflection are not worth a trace
        carrier = {
            key: value
            for key, value in handler_call_details.invocation_metadata or ()
            if isinstance(value, str)
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _traced_unary(method, carrier, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _traced_stream(method, carrier, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _server_span(method: str, carrier: dict[str, str]) -> Span:
    return tracer().start_span(
        method.lstrip("/"),
        context=propagate.extract(carrier),
        kind=SpanKind.SERVER,
        attributes=_rpc_attributes(method),
    )


def _traced_unary(
    method: str, carrier: dict[str, str], behavior: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        span = _server_span(method, carrier)
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                return await behavior(request, context)
        finally:
            _end_rpc_span(span, context.code())

    return handler


def _traced_stream(
    method: str, carrier: dict[str, str], behavior: Callable[..., AsyncIterator[Any]]
) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        span = _server_span(method, carrier)
        # Made current around each step of the stream only: a generator may be closed from
        # another context, where a context token attached here could not be detached.
        items = behavior(request, context)
        try:
            while True:
                token = otel_context.attach(trace.set_span_in_context(span))
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                yield item
        finally:
            _end_rpc_span(span, context.code())

    return handler


def _with_trace_context(
    details: grpc.aio.ClientCallDetails, span: Span
) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(tuple(details.metadata) if details.metadata else ()))
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    for key, value in carrier.items():
        metadata.add(key, value)
    return details._replace(metadata=metadata)  # type: ignore[attr-defined, no-any-return]


def _client_span(details: grpc.aio.ClientCallDetails) -> Span:
    method = details.method
    name = method.decode() if isinstance(method, bytes) else str(method)
    return tracer().start_span(
        name.lstrip("/"), kind=SpanKind.CLIENT, attributes=_rpc_attributes(name)
    )


async def _code_of(call: Any) -> grpc.StatusCode | None:
    try:
        return await call.code()  # type: ignore[no-any-return]
    except Exception:  # a call that failed before it started (cancelled): no code
        return grpc.StatusCode.UNKNOWN


async def _start_call(
    continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
) -> tuple[Span, Any]:
    """Open the call's client span and start the call with the trace context in its metadata;
    a call that fails to start ends its span at once."""
    span = _client_span(details)
    try:
        call = await continuation(_with_trace_context(details, span), request)
    except BaseException:
        _end_rpc_span(span, grpc.StatusCode.UNKNOWN)
        raise
    return span, call


class _UnaryUnaryTracing(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        span, call = await _start_call(continuation, client_call_details, request)
        _end_rpc_span(span, await _code_of(call))
        return call


class _UnaryStreamTracing(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        span, call = await _start_call(continuation, client_call_details, request)

        def done(finished: Any) -> None:
            try:
                code = finished.code() if not finished.cancelled() else grpc.StatusCode.CANCELLED
            except Exception:
                code = grpc.StatusCode.UNKNOWN
            _end_rpc_span(span, code if isinstance(code, grpc.StatusCode) else None)

        call.add_done_callback(done)
        return call


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for a channel to another service: the trace context travels with calls."""
    return [_UnaryUnaryTracing(), _UnaryStreamTracing()]


# -- HTTP -------------------------------------------------------------------------------

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


HTTP_REQUESTS = Counter(
    "llmproxy_http_requests_total",
    "HTTP requests by server (http: the OpenAI API, webhook) and status",
    ["server", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "llmproxy_http_request_seconds",
    "HTTP request latency (to the end of the body, streams included)",
    ["server"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


class TracingAsgiMiddleware:
    """A SERVER span per HTTP request, continuing the caller's ``traceparent`` if any, and
    the request counted by status (``server`` names the front door in the metrics)."""

    def __init__(
        self, app: Callable[[_Scope, _Receive, _Send], Awaitable[None]], *, server: str = "http"
    ) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
        }
        method, path = scope.get("method", "GET"), scope.get("path", "")
        status: list[int] = []
        started = time.perf_counter()

        async def send_traced(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with tracer().start_as_current_span(
            f"{method} {path}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        ) as span:
            try:
                await self.app(scope, receive, send_traced)
            finally:
                code = status[0] if status else 500  # no response started: the app failed
                span.set_attribute("http.response.status_code", code)
                if code >= 500:
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {code}"))
                # methods from a fixed set: a client cannot mint label values
                label = method if method in _METHODS else "OTHER"
                HTTP_REQUESTS.labels(self.server, label, str(code)).inc()
                HTTP_SECONDS.labels(self.server).observe(time.perf_counter() - started)


# -- providers --------------------------------------------------------------------------


@contextlib.contextmanager
def provider_span(model: str, provider: str, *, streaming: bool = False) -> Iterator[Span]:
    """A CLIENT span around one provider call (not made current: it wraps no further RPCs,
    and a stream's generator may finish in another context)."""
    span = tracer().start_span(
        f"provider {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.request.model": model,
            "gen_ai.system": provider,
            "llmproxy.streaming": streaming,
        },
    )
    try:
        yield span
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()
