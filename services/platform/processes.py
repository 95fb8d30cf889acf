"""Child processes that never outlive their parent, and ports to give them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["free_port", "guarded", "spawn", "stop_process"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def guarded(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so the child dies with this process (see ``die_with_parent``)."""
    return [sys.executable, "-m", "llmproxy.platform.die_with_parent", *argv]


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so a terminal's Ctrl-C reaches only the launcher,
    which stops children in order), logging to ``log_path``, dying with this process."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            guarded(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], *, timeout_s: float) -> int | None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit code."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(5)
