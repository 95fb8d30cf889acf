"""Log lines carry the current span's trace and span ids (and none outside a span)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from llmproxy.platform.logs import add_trace_context, configure_logging


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """Logging configured as a service does (JSON lines); what it writes."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(service="test", instance="test-1", level="info", fmt="json")
    out = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            handler.setStream(out)  # type: ignore[attr-defined]
    try:
        yield out
    finally:
        root.handlers[:], root.level = handlers, level
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def test_a_line_logged_in_a_span_carries_its_ids_and_one_outside_none(
    logged: io.StringIO,
) -> None:
    tracer = TracerProvider().get_tracer("test")
    log = structlog.get_logger("test")
    log.info("before")
    with tracer.start_as_current_span("request") as span:
        log.info("inside")
        logging.getLogger("some.library").warning("stdlib inside")
        context = span.get_span_context()
    log.info("after")
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    by_event = {line["event"]: line for line in lines}
    assert set(by_event) == {"before", "inside", "stdlib inside", "after"}
    ids = {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
    for event in ("inside", "stdlib inside"):
        line = by_event[event]
        assert {k: line.get(k) for k in ids} == ids, line
        assert line["service"] == "test"
    for event in ("before", "after"):
        assert "trace_id" not in by_event[event] and "span_id" not in by_event[event]


def test_a_continued_remote_context_counts_and_an_invalid_one_does_not() -> None:
    # a caller's traceparent continued without an SDK (no exporter) is a non-recording span
    remote = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(remote)):
        added = add_trace_context(None, "info", {"event": "x"})
    assert added == {
        "event": "x",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }
    with trace.use_span(NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)):
        assert add_trace_context(None, "info", {"event": "x"}) == {"event": "x"}
    assert add_trace_context(None, "info", {"event": "x"}) == {"event": "x"}
    # ids a caller bound itself are kept
    with trace.use_span(NonRecordingSpan(remote)):
        kept = add_trace_context(None, "info", {"event": "x", "trace_id": "mine"})
    assert kept["trace_id"] == "mine"
