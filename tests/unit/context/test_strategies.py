import pytest

from llmproxy.context.strategies import ContextRequest, Strategy, TurnRecord, plan_context
from llmproxy.platform.errors import InvalidArgumentError


def words(text: str) -> int:
    return len(text.split())


def history(n: int) -> list[TurnRecord]:
    turns = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        content = f"turn {i} " + "x " * i
        turns.append(TurnRecord(seq=i + 1, role=role, content=content, tokens=words(content)))
    return turns


def plan(strategy: Strategy, n: int = 6, **kw: object):  # type: ignore[no-untyped-def]
    request = ContextRequest(
        strategy=strategy, system_prompt="be brief", prompt="what now", history=history(n), **kw  # type: ignore[arg-type]
    )
    return plan_context(request, words)


def test_full_sends_everything_with_the_system_prompt_first_and_the_prompt_last() -> None:
    result = plan(Strategy.FULL)
    assert result.messages[0].role == "system" and result.messages[-1].content == "what now"
    assert result.turns_sent == result.turns_total == 6
    assert result.tokens_sent == result.tokens_full_history


def test_last_k_keeps_the_most_recent_turns() -> None:
    result = plan(Strategy.LAST_K, k=2)
    assert [m.content.split()[1] for m in result.messages[1:-1]] == ["4", "5"]
    assert result.tokens_sent < result.tokens_full_history


def test_token_budget_keeps_whole_recent_turns_that_fit() -> None:
    # system 2 + prompt 2 = 4; turns cost 2,3,4,5,6,7 tokens from the oldest
    result = plan(Strategy.TOKEN_BUDGET, token_budget=4 + 7 + 6 + 1)
    assert result.turns_sent == 2 and result.tokens_sent == 17
    assert not result.truncated


def test_an_oversized_prompt_is_truncated_from_the_front_and_flagged() -> None:
    request = ContextRequest(
        strategy=Strategy.TOKEN_BUDGET,
        system_prompt="",
        prompt=" ".join(f"w{i}" for i in range(100)),
        history=history(3),
        token_budget=20,
    )
    result = plan_context(request, words)
    assert result.truncated and result.turns_sent == 0
    assert result.messages[-1].content.endswith("w99") and words(result.messages[-1].content) <= 20


def test_an_oversized_prompt_is_rejected_when_the_policy_says_so() -> None:
    request = ContextRequest(
        strategy=Strategy.TOKEN_BUDGET, system_prompt="", prompt="a " * 50, history=[],
        token_budget=20, reject_oversized_turn=True,
    )
    with pytest.raises(InvalidArgumentError, match="over the token_budget of 20"):
        plan_context(request, words)


@pytest.mark.parametrize(
    ("strategy", "kwargs", "match"),
    [
        (Strategy.LAST_K, {"k": 0}, "k must be between 1 and 1000"),
        (Strategy.TOKEN_BUDGET, {"token_budget": 3}, "token_budget must be between 16"),
        (Strategy.SUMMARY, {}, "not available yet"),
    ],
)
def test_out_of_range_parameters_name_the_bound(strategy: Strategy, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        plan(strategy, **kwargs)
