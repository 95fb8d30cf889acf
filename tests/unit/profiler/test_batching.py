"""Group commit: concurrent submissions share writes; a bad item fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from llmproxy.profiler.batching import GroupCommit
from llmproxy.profiler.profiles import Completion, Profile, apply_completion, apply_completions


async def test_concurrent_items_share_one_write_and_a_bad_item_fails_alone() -> None:
    written: list[list[int]] = []

    async def write(batch: Sequence[int]) -> None:
        if 13 in batch:
            raise ValueError("13 is refused")
        written.append(list(batch))

    commits = GroupCommit(write, window_s=0.01, max_batch=8)
    results = await asyncio.gather(*(commits.submit(i) for i in range(20)), return_exceptions=True)
    failed = [i for i, r in enumerate(results) if isinstance(r, Exception)]
    assert failed == [13] and "13 is refused" in str(results[13])
    assert sorted(i for batch in written for i in batch) == [i for i in range(20) if i != 13]
    assert commits.batches[0] == 8  # the first write waited for others and took the most
    assert len(commits.batches) == 3  # 8 + 8 + 4 items


async def test_a_cancelled_submitter_does_not_break_the_writer() -> None:
    gate = asyncio.Event()
    written: list[int] = []

    async def write(batch: Sequence[int]) -> None:
        await gate.wait()
        written.extend(batch)

    commits = GroupCommit(write, window_s=0)
    first = asyncio.create_task(commits.submit(1))
    await asyncio.sleep(0.01)
    first.cancel()
    gate.set()
    await commits.submit(2)
    assert written == [1, 2]  # written anyway: the write must be idempotent


def test_max_batch_must_be_positive() -> None:
    async def write(batch: Sequence[int]) -> None: ...

    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(write, max_batch=0)


def test_applying_a_batch_equals_applying_one_by_one() -> None:
    completions = [
        Completion("m", "p", error=i % 5 == 0, cost_nanousd=100 * i, output_tokens=i,
                   latency_s=0.1 * i, ttft_s=0.05 * i if i % 3 else None)
        for i in range(1, 40)
    ]  # fmt: skip
    one_by_one = Profile("m")
    for completion in completions:
        one_by_one = apply_completion(one_by_one, completion)
    assert apply_completions(Profile("m"), completions) == one_by_one
