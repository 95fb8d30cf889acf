"""Shared helpers of the PCS benchmarks (import path, time limits, result files)."""

from __future__ import annotations

import json
import os
import platform
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


class RunTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float | None, clock: str = "wall") -> Iterator[None]:
    """Abort the body with RunTimeout after ``seconds`` of wall time, or of this process's
    CPU time with ``clock="cpu"`` (a budget that a loaded, shared machine does not eat);
    main thread, POSIX."""
    if not seconds:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise RunTimeout

    timer, sig = (
        (signal.ITIMER_PROF, signal.SIGPROF)
        if clock == "cpu"
        else (signal.ITIMER_REAL, signal.SIGALRM)
    )
    previous = signal.signal(sig, _raise)
    signal.setitimer(timer, seconds)
    try:
        yield
    finally:
        signal.setitimer(timer, 0)
        signal.signal(sig, previous)


def load_average() -> float | None:
    """The 1-minute load average (how shared the machine was), where the OS tells it."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def result_path(name: str, out: str | None) -> Path:
    """Where a benchmark writes: ``out`` if given, else ``bench/results/<name>.json``."""
    return Path(out) if out else RESULTS / f"{name}.json"


def write_result(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path
