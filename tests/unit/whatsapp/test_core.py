"""The channel's decisions: what a user's message leads to, at a given time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from llmproxy.whatsapp.core import (
    OVER_BUDGET,
    RATE_LIMITED,
    Ask,
    ChannelPolicy,
    Erase,
    Ignore,
    ListModels,
    PinModel,
    Reply,
    ShowCost,
    UsageSummary,
    UserState,
    cost_text,
    decide,
    eta_notice,
    format_usd,
    predicted_wait,
    record_spend,
    window_open,
)
from llmproxy.whatsapp.payload import Inbound

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)  # a Wednesday
POLICY = ChannelPolicy(rate_limit=3, daily_budget_nanousd=1_000_000)
FREE = ChannelPolicy(rate_limit=0)


def user(**changes: object) -> UserState:
    return replace(UserState(wa_id="31600000001", user_id="wa-u1"), **changes)  # type: ignore[arg-type]


def text(body: str, *, age: timedelta = timedelta(seconds=2), kind: str = "text") -> Inbound:
    return Inbound("wamid.1", "31600000001", kind, body if kind == "text" else "", NOW - age)


def test_a_question_is_asked_and_opens_the_window() -> None:
    decision = decide(text("  What is the capital of France? "), user(), POLICY, NOW)
    assert decision.action == Ask("What is the capital of France?")
    assert decision.user.last_inbound_at == NOW - timedelta(seconds=2)
    assert window_open(decision.user.last_inbound_at, NOW + timedelta(hours=23), POLICY)
    assert not window_open(decision.user.last_inbound_at, NOW + timedelta(hours=24), POLICY)
    assert not window_open(None, NOW, POLICY)


def test_a_replayed_old_message_is_recorded_not_answered() -> None:
    old = text("hello", age=timedelta(hours=25))
    decision = decide(old, user(), POLICY, NOW)
    assert decision.action == Ignore("stale")
    assert decision.user == user()  # nothing about the user changes


def test_the_rate_limit_answers_politely_once_then_stays_quiet() -> None:
    state = user()
    actions = []
    for _ in range(6):
        decision = decide(text("hi"), state, POLICY, NOW)
        actions.append(decision.action)
        state = decision.user
    assert actions[:3] == [Ask("hi")] * 3
    assert actions[3] == Reply(RATE_LIMITED, "rate_limited")
    assert actions[4:] == [Ignore("rate_limited")] * 2
    # a new window lets the user ask again
    later = decide(text("hi"), state, POLICY, NOW + timedelta(minutes=1, seconds=1))
    assert later.action == Ask("hi") and later.user.rate_count == 1


def test_the_daily_budget_stops_questions_but_not_commands_and_renews_at_midnight() -> None:
    spent = record_spend(user(), 1_000_000, NOW)
    assert (spent.spend_day, spent.spend_nanousd) == ("2026-12-02", 1_000_000)
    assert decide(text("another?"), spent, POLICY, NOW).action == Reply(OVER_BUDGET, "over_budget")
    assert isinstance(decide(text("/cost"), spent, POLICY, NOW).action, ShowCost)
    tomorrow = NOW + timedelta(hours=7)
    decision = decide(text("another?", age=timedelta(0)), spent, POLICY, tomorrow)
    assert decision.action == Ask("another?") and decision.user.spend_nanousd == 0
    assert decide(text("x"), spent, ChannelPolicy(daily_budget_nanousd=0), NOW).action == Ask("x")


def test_unsupported_kinds_get_an_explanation_and_reactions_get_silence() -> None:
    decision = decide(text("", kind="audio"), user(), POLICY, NOW)
    assert isinstance(decision.action, Reply) and decision.action.outcome == "unsupported"
    assert "only read text messages, not audio" in decision.action.text
    assert decide(text("", kind="reaction"), user(), POLICY, NOW).action == Ignore(
        "ignored_reaction"
    )


def test_commands_change_the_users_preferences() -> None:
    state = user()
    for body in ("/mode cheap", "/cache off", "/context last_k 3"):
        decision = decide(text(body), state, FREE, NOW)
        assert isinstance(decision.action, Reply) and decision.action.outcome == "command"
        state = decision.user
    assert (state.mode, state.objective, state.cache_enabled) == ("cheap", "cost", False)
    assert (state.context_strategy, state.context_param) == ("last_k", 3)
    state = decide(text("/context default"), state, FREE, NOW).user
    assert (state.context_strategy, state.context_param) == ("", 0)
    reset = decide(text("/reset"), replace(state, conversation_id="c-1"), FREE, NOW)
    assert reset.user.conversation_id == ""
    assert decide(text("/model llama"), state, FREE, NOW).action == PinModel("llama")
    assert decide(text("/model"), state, FREE, NOW).action == ListModels()
    unpinned = decide(text("/model auto"), replace(state, pinned_model="x"), FREE, NOW)
    assert unpinned.user.pinned_model == ""
    assert decide(text("/delete"), state, FREE, NOW).action == Erase()
    cost = decide(text("/cost"), state, FREE, NOW).action
    assert cost == ShowCost(datetime(2026, 11, 30, tzinfo=UTC))  # Monday of this week


def test_a_bad_or_unknown_command_replies_with_how_to_use_it() -> None:
    decision = decide(text("/mode fastest"), user(), POLICY, NOW)
    assert decision.action == Reply(
        "Usage: /mode cheap|balanced|best\n\nSend /help for all commands.", "bad_command"
    )
    unknown = decide(text("/frobnicate"), user(), POLICY, NOW).action
    assert isinstance(unknown, Reply) and "/mode cheap|balanced|best" in unknown.text


def test_the_got_it_notice_only_for_long_waits() -> None:
    policy = ChannelPolicy(eta_notice_after=timedelta(seconds=10))
    assert eta_notice(timedelta(seconds=9), policy) is None
    assert eta_notice(timedelta(seconds=10), policy) is None
    assert eta_notice(timedelta(seconds=41.2), policy) == (
        "Got it — expect an answer in about 42 seconds."
    )
    assert eta_notice(timedelta(minutes=5, seconds=1), policy) == (
        "Got it — expect an answer in about 6 minutes."
    )


def test_cost_reply_shows_small_amounts_readably() -> None:
    assert format_usd(0) == "$0"
    assert format_usd(26_000) == "$0.000026"
    assert format_usd(1_234_000_000) == "$1.23"
    assert format_usd(5) == "<$0.000001"
    assert cost_text(UsageSummary(0, 0, 0, 0)) == "No questions answered this week yet."
    assert cost_text(UsageSummary(3, 1, 78_000, 417_000)) == (
        "This week: 3 questions, cost $0.000078, saved $0.000417 compared with the reference "
        "model. 1 answered from the cache for free."
    )


def test_the_predicted_wait_follows_the_quote_unless_the_stream_knows_of_a_queue() -> None:
    s = timedelta(seconds=1)
    # measured (Quote) beats the catalog prior of the stream, either way
    assert predicted_wait(quoted=2 * s, streamed=30 * s) == 2 * s
    assert predicted_wait(quoted=40 * s, streamed=3 * s) == 40 * s
    # a capacity-limited backend's queue: the stream's ETA includes the wait
    assert predicted_wait(quoted=2 * s, streamed=45 * s, queued=True) == 45 * s
    assert predicted_wait(quoted=20 * s, streamed=5 * s, queued=True) == 20 * s
    # no Quote (it failed, or it did not know the model): the stream's ETA stands
    assert predicted_wait(quoted=None, streamed=30 * s) == 30 * s
    assert predicted_wait(quoted=None, streamed=None) == timedelta(0)
    # a cache hit answers at once
    assert predicted_wait(quoted=40 * s, streamed=40 * s, cache_hit=True) == timedelta(0)
