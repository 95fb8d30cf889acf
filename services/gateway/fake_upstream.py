"""A local OpenAI-compatible upstream that answers at once, for benchmarks and tests.

Never used by the gateway itself. A bare asyncio HTTP/1.1 server (keep-alive, JSON and
chunked SSE) so that its own cost stays far below the gateway's in a benchmark.
``GET /stats`` returns how many completions it served.

Run it alone: ``python -m llmproxy.gateway.fake_upstream --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any

__all__ = ["FakeUpstream"]

ANSWER = "Paris is the capital of France."
USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def _completion(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    ).encode()


def _chunks(model: str) -> list[bytes]:
    def event(body: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(body)}\n\n".encode()

    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    events = [
        event({**base, "choices": [{"index": 0, "delta": {"content": word + " "}}]})
        for word in ANSWER.split(" ")
    ]
    events.append(event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    events.append(event({**base, "choices": [], "usage": USAGE}))
    events.append(b"data: [DONE]\n\n")
    return events


class FakeUpstream:
    """``async with FakeUpstream() as up: up.base_url``; counts what it served."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None
        self.completions = 0

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{self._host}:{port}/v1"

    async def __aenter__(self) -> FakeUpstream:
        self._server = await asyncio.start_server(self._serve, self._host, self._port, backlog=4096)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "GET" and path.endswith("/stats"):
                    self._respond(writer, json.dumps({"completions": self.completions}).encode())
                elif method == "POST" and path.endswith("/chat/completions"):
                    request = json.loads(body)
                    self.completions += 1
                    model = request.get("model", "fake")
                    if request.get("stream"):
                        self._stream(writer, _chunks(model))
                    else:
                        self._respond(writer, _completion(model))
                else:
                    self._respond(
                        writer, b'{"error": {"message": "not found"}}', status="404 Not Found"
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _respond(writer: asyncio.StreamWriter, data: bytes, status: str = "200 OK") -> None:
        writer.write(
            f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n".encode()
            + data
        )

    @staticmethod
    def _stream(writer: asyncio.StreamWriter, events: list[bytes]) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for event in events:
            writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        writer.write(b"0\r\n\r\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()

    async def run() -> None:
        async with FakeUpstream(args.host, args.port) as upstream:
            print(upstream.base_url, flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
