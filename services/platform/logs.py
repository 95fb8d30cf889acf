"""Structured logging: one JSON object per line on stderr (or readable console lines).

A line logged while an OpenTelemetry span is current (a request's server span, or a caller's
trace context continued without exporting) carries ``trace_id`` and ``span_id`` in the W3C
hex form, so logs and traces of one request can be joined.
"""

from __future__ import annotations

import logging
import sys

import structlog
from opentelemetry import trace

__all__ = ["add_trace_context", "configure_logging"]


def add_trace_context(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog processor: ``trace_id`` (32 hex digits) and ``span_id`` (16) of the current
    span, when there is a valid one; ids the caller bound itself are kept."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event_dict.setdefault("span_id", trace.format_span_id(context.span_id))
    return event_dict


def configure_logging(
    *, service: str, instance: str, level: str = "info", fmt: str = "json"
) -> None:
    """Route structlog and the standard library's logging through one renderer."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter stays at warning unless we debug.
    for noisy in ("nats", "httpx", "openai", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level != "debug" else logging.DEBUG)
    structlog.contextvars.bind_contextvars(service=service, instance=instance)
