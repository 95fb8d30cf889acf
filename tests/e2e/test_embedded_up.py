"""The README's promise: `llmproxy up`, then `llmproxy ask`, through the real stack.

Real nats-server (private, free port), SQLite, the llama.cpp server with SmolLM2, and every
service as its own process, started by the same launcher a user runs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmproxy.platform.processes import free_port
from tests.support.processes import alive, children_of

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env.update(
        {
            "LLMPROXY_HOME": str(home),
            "LLMPROXY_GATEWAY_PORT": str(free_port()),
            "LLMPROXY_GATEWAY_HTTP_PORT": str(free_port()),
        }
    )
    env.pop("LLMPROXY_API_KEY", None)
    env.pop("LLMPROXY_LOCAL_MODEL_URL", None)
    return env


def _wait_for_stack(home: Path, process: subprocess.Popen[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"llmproxy up exited early:\n{process.stdout.read() if process.stdout else ''}"
            )
        try:
            return json.loads((home / "stack.json").read_text())
        except (OSError, json.JSONDecodeError):
            time.sleep(0.2)
    raise AssertionError("the stack did not come up in time")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Path, dict, subprocess.Popen[str], dict[str, str]]]:
    home = tmp_path / "home"
    env = _env(home)
    process = subprocess.Popen(
        [str(BIN / "llmproxy"), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield home, _wait_for_stack(home, process), process, env
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def test_up_then_ask_answers_with_the_local_model_and_records_usage(stack) -> None:  # type: ignore[no-untyped-def]
    home, info, _process, env = stack
    asked = subprocess.run(
        [str(BIN / "llmproxy"), "ask", "What is the capital of France?", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert asked.returncode == 0, asked.stderr
    reply = json.loads(asked.stdout)
    assert reply["answer"].strip()
    assert reply["choice"]["model"] == "smollm2-135m-instruct"
    assert int(reply["usage"]["inputTokens"]) > 0 and int(reply["usage"]["outputTokens"]) > 0
    assert reply["latency"].endswith("s")

    # The human-readable form carries the same facts.
    plain = subprocess.run(
        [str(BIN / "llmproxy"), "ask", "Name a colour.", "--conversation", reply["conversationId"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 0, plain.stderr
    assert "model smollm2-135m-instruct" in plain.stdout and "tokens" in plain.stdout

    # The profiler wrote a usage row for the request (asynchronously, via llm.completed),
    # and the context service stored both turns of each exchange.
    database = home / "llmproxy.db"
    deadline = time.monotonic() + 20
    usage = turns = 0
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as db:
            usage = db.execute(
                "select count(*) from usage_records where request_id = ? and model = ?",
                (reply["requestId"], "smollm2-135m-instruct"),
            ).fetchone()[0]
            turns = db.execute(
                "select count(*) from turns where conversation_id = ?", (reply["conversationId"],)
            ).fetchone()[0]
        if usage == 1 and turns == 4:
            break
        time.sleep(0.2)
    assert (usage, turns) == (1, 4)

    # The OpenAI-compatible API answers the official SDK with the key the stack made.
    import openai

    client = openai.OpenAI(
        base_url=info["http"], api_key=(home / "api_key").read_text().strip(), max_retries=0
    )
    completion = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=8,
        timeout=120,
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens > 0

    # Asked again, the same question is answered from the cache, free. (The cache stores
    # the first answer from llm.completed, asynchronously: allow it a moment.)
    again: dict = {}
    for _ in range(20):
        repeat = subprocess.run(
            [str(BIN / "llmproxy"), "ask", "What is the capital of France?", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert repeat.returncode == 0, repeat.stderr
        again = json.loads(repeat.stdout)
        if again.get("cache", {}).get("outcome", "").endswith("_HIT"):
            break
        time.sleep(0.5)
    assert again["cache"]["outcome"] == "CACHE_OUTCOME_EXACT_HIT"
    assert again["answer"] == reply["answer"]
    assert int(again["cost"].get("costNanousd", 0)) == 0

    status = subprocess.run(
        [str(BIN / "llmproxy"), "status"], env=env, capture_output=True, text=True, timeout=30
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("SERVING") == 7


def test_stopping_up_leaves_no_process_behind(stack) -> None:  # type: ignore[no-untyped-def]
    home, info, process, _ = stack
    children = set(info["processes"].values())
    assert len(children) == 9  # nats, model, 7 services
    assert all(alive(pid) for pid in children)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    assert not [pid for pid in children if alive(pid)]
    assert not (home / "stack.json").exists()


def test_ctrl_c_during_start_up_leaves_no_process_behind(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = subprocess.Popen(
        [str(BIN / "llmproxy"), "up"],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    # Interrupt once the model server is starting (nats and the model are children).
    while time.monotonic() < deadline and len(seen) < 2:
        seen |= children_of(process.pid)
        time.sleep(0.05)
    assert len(seen) >= 2, "the launcher never started its children"
    process.send_signal(signal.SIGINT)
    process.wait(60)
    assert not [pid for pid in seen if alive(pid)]
    assert not (home / "stack.json").exists()
