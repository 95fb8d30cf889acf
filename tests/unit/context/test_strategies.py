from dataclasses import replace

import numpy as np
import pytest

from llmproxy.context.strategies import (
    SUMMARY_HEADER,
    ContextDefaults,
    ContextRequest,
    Strategy,
    TurnRecord,
    plan_context,
)
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
        strategy=strategy,
        system_prompt="be brief",
        prompt="what now",
        history=history(n),
        **kw,  # type: ignore[arg-type]
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
        strategy=Strategy.TOKEN_BUDGET,
        system_prompt="",
        prompt="a " * 50,
        history=[],
        token_budget=20,
        reject_oversized_turn=True,
    )
    with pytest.raises(InvalidArgumentError, match="over the token_budget of 20"):
        plan_context(request, words)


@pytest.mark.parametrize(
    ("strategy", "kwargs", "match"),
    [
        (Strategy.LAST_K, {"k": 0}, "k must be between 1 and 1000"),
        (Strategy.TOKEN_BUDGET, {"token_budget": 3}, "token_budget must be between 16"),
        (Strategy.LAST_K, {"k": 1001}, "k must be between 1 and 1000"),
        (Strategy.RELEVANT, {"k": -1}, "k must be between 1 and 1000 for relevant"),
        (Strategy.RELEVANT, {"k": 1001}, "k must be between 1 and 1000 for relevant"),
        (Strategy.TOKEN_BUDGET, {"token_budget": 10_000_001}, "and 10000000, got 10000001"),
    ],
)
def test_out_of_range_parameters_name_the_bound(
    strategy: Strategy, kwargs: dict, match: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        plan(strategy, **kwargs)


# --- relevant ------------------------------------------------------------------------


def axis(i: int, dims: int = 8) -> np.ndarray:
    vector = np.zeros(dims, dtype=np.float32)
    vector[i] = 1.0
    return vector


def topical_history() -> list[TurnRecord]:
    """Six turns about topics 0..5 (one unit axis each); the prompt will be about topic 2."""
    return [
        TurnRecord(
            seq=i + 1,
            role="user" if i % 2 == 0 else "assistant",
            content=f"topic {i}",
            tokens=2,
            embedding=axis(i),
        )
        for i in range(6)
    ]


def relevant(history: list[TurnRecord], prompt_vector: np.ndarray, k: int = 0):  # type: ignore[no-untyped-def]
    request = ContextRequest(
        strategy=Strategy.RELEVANT,
        system_prompt="be brief",
        prompt="about topic 2",
        history=history,
        k=k,
        prompt_embedding=prompt_vector,
    )
    return plan_context(request, words)


def sent(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.content for m in result.messages[1:-1]]


def test_relevant_sends_the_most_similar_turns_plus_the_last_in_conversation_order() -> None:
    prompt = axis(2) * 0.8 + axis(0) * 0.6  # most like topic 2, then topic 0
    result = relevant(topical_history(), prompt, k=2)
    assert sent(result) == ["topic 0", "topic 2", "topic 5"]
    assert result.turns_sent == 3 and result.turns_total == 6
    assert result.tokens_sent == 2 + 3 + 3 * 2 < result.tokens_full_history


def test_relevant_breaks_ties_towards_the_more_recent_turn() -> None:
    history = topical_history()
    history[3] = TurnRecord(
        seq=4, role="assistant", content="topic 2 again", tokens=3, embedding=axis(2)
    )
    result = relevant(history, axis(2), k=1)
    assert sent(result) == ["topic 2 again", "topic 5"]


def test_relevant_never_picks_a_turn_without_an_embedding() -> None:
    history = topical_history()
    history[2] = TurnRecord(seq=3, role="user", content="topic 2 unembedded", tokens=3)
    result = relevant(history, axis(2), k=1)
    assert "topic 2 unembedded" not in sent(result) and sent(result)[-1] == "topic 5"


def test_relevant_with_k_over_the_history_sends_everything_once() -> None:
    result = relevant(topical_history(), axis(2), k=50)
    assert sent(result) == [f"topic {i}" for i in range(6)]
    assert result.tokens_sent == result.tokens_full_history


def test_relevant_k_zero_means_the_default_of_four() -> None:
    history = [
        TurnRecord(seq=i + 1, role="user", content=f"t{i}", tokens=1, embedding=axis(i, 16))
        for i in range(12)
    ]
    assert relevant(history, axis(0, 16)).turns_sent == 5  # 4 similar + the last


def test_relevant_on_an_empty_conversation_sends_only_the_prompt() -> None:
    result = relevant([], axis(0))
    assert [m.role for m in result.messages] == ["system", "user"] and result.turns_sent == 0


# --- summary -------------------------------------------------------------------------


def summarised(summary: str, upto: int, n: int = 6):  # type: ignore[no-untyped-def]
    request = ContextRequest(
        strategy=Strategy.SUMMARY,
        system_prompt="be brief",
        prompt="what now",
        history=history(n),
        summary=summary,
        summary_upto_seq=upto,
    )
    return plan_context(request, words)


def test_summary_stands_for_the_turns_it_covers_and_the_rest_stay_verbatim() -> None:
    result = summarised("user likes tea", upto=4)
    assert result.messages[0].content == "be brief"
    assert result.messages[1].role == "system"
    assert result.messages[1].content == SUMMARY_HEADER + "user likes tea"
    assert [m.content.split()[1] for m in result.messages[2:-1]] == ["4", "5"]  # seq 5 and 6
    assert result.turns_sent == 2 and result.turns_summarized == 4
    summary_tokens = words(SUMMARY_HEADER + "user likes tea")
    assert result.tokens_sent == 2 + summary_tokens + 2 + (6 + 7)


def test_summary_without_a_summary_yet_sends_every_turn() -> None:
    result = summarised("", upto=0)
    assert result.turns_sent == 6 and result.turns_summarized == 0
    assert result.tokens_sent == result.tokens_full_history


# --- defaults --------------------------------------------------------------------------


def test_a_request_without_a_strategy_gets_its_apps_default_else_the_services() -> None:
    defaults = ContextDefaults(
        strategy=Strategy.RELEVANT, app_strategies={"whatsapp": Strategy.SUMMARY}
    )
    assert defaults.strategy_for("whatsapp", None) is Strategy.SUMMARY
    assert defaults.strategy_for("other", None) is Strategy.RELEVANT
    assert defaults.strategy_for("whatsapp", Strategy.FULL) is Strategy.FULL


# -- the model's context window ---------------------------------------------------------
# history(n): turn i has i + 2 words; each message costs 4 more tokens (TOKENS_PER_MESSAGE).


def test_turns_the_window_cannot_take_are_dropped_oldest_first_and_whole() -> None:
    fits_all = plan(Strategy.FULL, n=10, max_input_tokens=1000)
    assert fits_all.turns_sent == 10 and fits_all.turns_dropped_for_window == 0
    # system (2 + 4) + prompt (2 + 4) = 12; the last three turns need (9+4)+(10+4)+(11+4) = 42
    capped = plan(Strategy.FULL, n=10, max_input_tokens=12 + 42)
    assert capped.turns_sent == 3 and capped.turns_dropped_for_window == 7
    assert [m.content.split()[1] for m in capped.messages[1:-1]] == ["7", "8", "9"]
    assert capped.messages[0].content == "be brief" and capped.messages[-1].content == "what now"
    assert not capped.truncated
    # one token less and the oldest of those three goes too: never half a turn
    assert plan(Strategy.FULL, n=10, max_input_tokens=12 + 41).turns_sent == 2


def test_every_strategy_respects_the_window() -> None:
    for strategy, extra in (
        (Strategy.LAST_K, {"k": 8}),
        (Strategy.TOKEN_BUDGET, {"token_budget": 10_000}),
        (Strategy.SUMMARY, {"summary": "s", "summary_upto_seq": 2}),
    ):
        result = plan(strategy, n=10, max_input_tokens=40, **extra)
        sent = sum(len(m.content.split()) + 4 for m in result.messages)
        assert sent <= 40, strategy
        assert result.turns_dropped_for_window > 0, strategy


def test_a_prompt_over_the_window_is_truncated_and_flagged_or_rejected_by_policy() -> None:
    long_prompt = ContextRequest(
        strategy=Strategy.FULL,
        system_prompt="be brief",
        prompt="word " * 100,
        history=history(4),
        max_input_tokens=50,
    )
    result = plan_context(long_prompt, words)
    assert result.truncated and result.turns_sent == 0
    assert sum(len(m.content.split()) + 4 for m in result.messages) <= 50
    with pytest.raises(InvalidArgumentError, match="the model takes 50"):
        plan_context(replace(long_prompt, reject_oversized_turn=True), words)
