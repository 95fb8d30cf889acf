"""Group commit: the events that several bus handlers hold at once, written in one transaction.

Each handler hands its item to :meth:`GroupCommit.submit` and returns (so the bus acks its
message) only once the transaction holding the item has committed. The first item waits
``window_s`` for others to join; at most ``max_batch`` go into one write. When a batch
fails, its items are written one by one, so a single bad item fails alone (its message is
redelivered) and the others are not held back. The write itself must be idempotent
(claiming event ids in its own transaction): an item whose handler was cancelled may still
be committed, and its redelivery must then change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[None]],
        *,
        window_s: float = 0.005,
        max_batch: int = 256,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._write = write
        self._window = max(0.0, window_s)
        self._max = max_batch
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: sizes of the batches written (for tests and the benchmark)
        self.batches: list[int] = []

    async def submit(self, item: T) -> None:
        """Return once ``item`` is committed; raise what its write raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._run())
        await done

    async def _run(self) -> None:
        while self._waiting:
            if self._window and len(self._waiting) < self._max:
                await asyncio.sleep(self._window)
            batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
            self.batches.append(len(batch))
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                for item, done in batch:  # find the bad one(s); the rest commit
                    try:
                        await self._write([item])
                    except Exception as single:
                        _settle(done, single)
                    else:
                        _settle(done, None)
                continue
            for _, done in batch:
                _settle(done, None)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():  # its handler was cancelled meanwhile
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
