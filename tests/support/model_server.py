"""The real local model (llama.cpp server with SmolLM2-135M-Instruct) for tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from llmproxy.embedded.stack import model_server_argv
from llmproxy.platform.processes import free_port, spawn, stop_process


@contextmanager
def local_model_server(log_dir: Path, *, timeout_s: float = 60) -> Iterator[str]:
    """Start the server on a free port; yield its OpenAI base URL; always stop it."""
    port = free_port()
    process = spawn(
        model_server_argv(port), env={"PATH": "/usr/bin:/bin"}, log_path=log_dir / "model.log"
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"model server did not start: {(log_dir / 'model.log').read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        stop_process(process, timeout_s=10)
