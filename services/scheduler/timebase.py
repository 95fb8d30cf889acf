"""The scheduler's clock: core seconds (what the pure core computes with) against wall time.

``core = unix seconds x scale``. A scale above 1 runs the scheduler in accelerated time (a
simulated executor following a trace does ``scale`` seconds of work per wall second); the
same scale must be used across restarts, or persisted times would be read in another base.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["TimeBase"]


@dataclass(frozen=True, slots=True)
class TimeBase:
    #: core seconds per wall second (1: real time)
    scale: float = 1.0
    #: the wall clock, injectable for tests
    wall_clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"time scale must be > 0, got {self.scale!r}")

    def now(self) -> float:
        return self.wall_clock() * self.scale

    def to_wall(self, core: float) -> datetime:
        return datetime.fromtimestamp(core / self.scale, UTC)

    def to_core(self, wall: datetime) -> float:
        return wall.timestamp() * self.scale

    def wall_seconds(self, core_seconds: float) -> float:
        """A duration in core seconds as wall seconds."""
        return core_seconds / self.scale
