"""The fake OpenAI-compatible upstream (``llmproxy.gateway.fake_upstream``), answering every
request ``--delay`` seconds late: a slow model, for tests of what the latency changes.

    python -m tests.support.slow_upstream --port 9000 --delay 2.5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from llmproxy.gateway.fake_upstream import FakeUpstream

__all__ = ["SlowUpstream"]


class SlowUpstream(FakeUpstream):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, delay_s: float) -> None:
        super().__init__(host, port)
        self.delay_s = delay_s

    def _later(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        # the client sends its next request on this connection only after this response
        asyncio.get_running_loop().call_later(self.delay_s, writer.write, data)

    def _respond(self, writer: asyncio.StreamWriter, data: bytes, status: str = "200 OK") -> None:  # type: ignore[override]
        buffer = _Buffer()
        FakeUpstream._respond(buffer, data, status)  # type: ignore[arg-type]
        self._later(writer, buffer.data)

    def _stream(self, writer: asyncio.StreamWriter, events: list[bytes]) -> None:  # type: ignore[override]
        buffer = _Buffer()
        FakeUpstream._stream(buffer, events)  # type: ignore[arg-type]
        self._later(writer, buffer.data)


class _Buffer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--delay", type=float, required=True, help="seconds per answer")
    args = parser.parse_args()

    async def run() -> None:
        async with SlowUpstream(args.host, args.port, delay_s=args.delay) as upstream:
            print(upstream.base_url, flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
