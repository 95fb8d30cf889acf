"""Plain factory helpers for the live scheduler core's tests."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from llmproxy.scheduler.core import WfqConfig
from llmproxy.scheduler.live import LiveScheduler, SubmitSpec, Tolerance

_counter = iter(range(1, 10**9))


def create_scheduler(*, gpus: int = 4, executors: int = 1, **overrides: Any) -> LiveScheduler:
    """A scheduler with ``executors`` live executors of ``gpus`` GPUs each in pool "p"."""
    options: dict[str, Any] = {"executor_timeout": 10.0, "tolerance": Tolerance(0.5, 0.0)}
    options.update(overrides)
    scheduler = LiveScheduler(**options)
    for i in range(executors):
        scheduler.register_executor(f"e{i}", "p", gpus, "simulated", 0.0)
    return scheduler


def spec(size: float, demand: int = 1, **overrides: Any) -> SubmitSpec:
    fields: dict[str, Any] = {
        "job_id": f"j{next(_counter)}",
        "pool": "p",
        "demand": demand,
        "size": size,
    }
    fields.update(overrides)
    return SubmitSpec(**fields)


def two_classes(boundary: float = 100.0) -> WfqConfig:
    """Small jobs (<= boundary) and the rest, equal weights."""
    return WfqConfig(thresholds=(boundary, float("inf")), weights=(Fraction(1, 2), Fraction(1, 2)))
