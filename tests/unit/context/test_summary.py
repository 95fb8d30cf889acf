import pytest

from llmproxy.context.strategies import TurnRecord
from llmproxy.context.summary import SummaryPolicy, plan_summary_refresh


def words(text: str) -> int:
    return len(text.split())


def history(n: int, size: int = 3) -> list[TurnRecord]:
    return [
        TurnRecord(
            seq=i + 1,
            role="user" if i % 2 == 0 else "assistant",
            content=f"fact{i + 1} " + "w " * (size - 1),
            tokens=size,
        )
        for i in range(n)
    ]


def plan(turns: list[TurnRecord], *, summary: str = "", upto: int = 0, **policy: int):  # type: ignore[no-untyped-def]
    return plan_summary_refresh(
        turns,
        summary=summary,
        summary_upto_seq=upto,
        policy=SummaryPolicy(**policy),
        count_tokens=words,
    )


def test_nothing_is_folded_until_enough_turns_wait_beyond_the_recent_ones() -> None:
    assert plan(history(9), keep_recent=6, min_batch=4) is None  # 3 beyond the recent 6
    job = plan(history(10), keep_recent=6, min_batch=4)
    assert job is not None and job.upto_seq == 4 and job.turns_folded == 4


def test_a_fold_starts_after_the_current_summary_and_carries_it_forward() -> None:
    job = plan(history(20), summary="user has a cat named Tom", upto=8, keep_recent=6, min_batch=4)
    assert job is not None and job.from_upto_seq == 8 and job.upto_seq == 14
    prompt = job.messages[-1].content
    assert "user has a cat named Tom" in prompt
    assert "fact9" in prompt and "fact14" in prompt
    assert "fact8" not in prompt and "fact15" not in prompt  # covered / kept verbatim


def test_one_call_folds_at_most_max_input_tokens_and_the_rest_waits_for_the_next() -> None:
    job = plan(history(60, size=20), keep_recent=6, min_batch=4, max_input_tokens=200)
    assert job is not None and 1 <= job.turns_folded < 54
    assert sum(words(m.content) for m in job.messages) <= 200


def test_a_turn_larger_than_a_whole_call_is_cut_rather_than_blocking_the_summary() -> None:
    turns = history(12)
    turns[0] = TurnRecord(seq=1, role="user", content="huge " * 5000, tokens=5000)
    job = plan(turns, keep_recent=6, min_batch=4, max_input_tokens=300)
    assert job is not None and job.upto_seq == 1
    assert sum(words(m.content) for m in job.messages) <= 300


def test_policy_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="min_batch"):
        SummaryPolicy(min_batch=0)
