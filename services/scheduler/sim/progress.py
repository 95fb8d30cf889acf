"""A dependency-free progress bar for long simulations (writes to stderr)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """Callable ``(done, total)`` that redraws at most every ``interval`` seconds."""

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self._started = time.perf_counter()
        self._drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self._drawn < self.interval:
            return
        self._drawn = now
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        elapsed = now - self._started
        self.stream.write(f"\r{self.label:<14} [{bar}] {done}/{total} jobs {elapsed:6.1f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
