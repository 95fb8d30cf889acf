"""The channel's decisions, without I/O: message + user state + time in, action + new state out.

The worker loads the user, calls :func:`decide`, performs the action (ask the gateway,
read usage, erase data, or just reply) and stores the returned state. Everything a user
could notice — limits, the replay window, the 24-hour window, the "Got it" notice, the
replies' wording — is decided here, so it is tested in microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from llmproxy.whatsapp.commands import HELP, MODES, Command, CommandError, parse_command
from llmproxy.whatsapp.payload import Inbound

__all__ = [
    "Action",
    "Ask",
    "ChannelPolicy",
    "Decision",
    "Erase",
    "Ignore",
    "ListModels",
    "PinModel",
    "Reply",
    "ShowCost",
    "UsageSummary",
    "UserState",
    "cost_text",
    "decide",
    "eta_notice",
    "format_usd",
    "predicted_wait",
    "record_spend",
    "week_start",
    "window_open",
]

#: kinds that carry nothing to answer and deserve no reply
_SILENT_KINDS = frozenset({"reaction", "system", "unsupported", "ephemeral", "request_welcome"})

RATE_LIMITED = (
    "You're sending messages faster than I can answer them. Please wait a minute and try again."
)
OVER_BUDGET = (
    "You've used today's budget for questions. "
    "It renews at midnight UTC; commands like /cost still work."
)


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """The channel's rules (from the service's settings)."""

    #: messages older than this (by Meta's timestamp) are replays: recorded, not answered
    replay_window: timedelta = timedelta(hours=24)
    #: at most this many messages per ``rate_window`` per user (0: no limit)
    rate_limit: int = 20
    rate_window: timedelta = timedelta(minutes=1)
    #: spend per user per UTC day in nano-USD (0: no budget)
    daily_budget_nanousd: int = 0
    #: a predicted wait above this gets "Got it — expect an answer in about N seconds" first
    eta_notice_after: timedelta = timedelta(seconds=10)
    #: WhatsApp's customer-service window: free-form replies only this long after the
    #: user's last message
    service_window: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class UserState:
    """A WhatsApp user as the channel keeps them."""

    wa_id: str
    #: the tenant end user (a pseudonym, never the phone number)
    user_id: str
    conversation_id: str = ""
    mode: str = "balanced"
    pinned_model: str = ""
    context_strategy: str = ""
    context_param: int = 0
    cache_enabled: bool = True
    last_inbound_at: datetime | None = None
    rate_window_start: datetime | None = None
    rate_count: int = 0
    spend_day: str = ""
    spend_nanousd: int = 0

    @property
    def objective(self) -> str:
        """The gateway objective of the user's mode (cost | balanced | quality)."""
        return MODES.get(self.mode, "balanced")


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``text``; nothing else to do."""

    text: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Ignore:
    """Record the message; send nothing."""

    outcome: str


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask the gateway ``prompt`` with the user's preferences."""

    prompt: str


@dataclass(frozen=True, slots=True)
class ShowCost:
    """Reply with the user's cost and savings since ``since``."""

    since: datetime


@dataclass(frozen=True, slots=True)
class Erase:
    """Erase the user's conversations and the channel's rows about them."""


@dataclass(frozen=True, slots=True)
class PinModel:
    """Pin ``name`` if the gateway offers it (the adapter checks, then stores it)."""

    name: str


@dataclass(frozen=True, slots=True)
class ListModels:
    """Reply with the models the gateway offers."""


Action = Reply | Ignore | Ask | ShowCost | Erase | PinModel | ListModels


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: the user's state to store (counters, preferences)
    user: UserState


def week_start(now: datetime) -> datetime:
    """Monday 00:00 of ``now``'s week (in ``now``'s zone, UTC for the channel)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def window_open(last_inbound_at: datetime | None, now: datetime, policy: ChannelPolicy) -> bool:
    """May a free-form message be sent now (inside the 24-hour customer-service window)?"""
    return last_inbound_at is not None and now - last_inbound_at < policy.service_window


def _count_message(user: UserState, now: datetime, policy: ChannelPolicy) -> UserState:
    start, count = user.rate_window_start, user.rate_count
    if start is None or now - start >= policy.rate_window or now < start:
        start, count = now, 0
    return replace(user, rate_window_start=start, rate_count=count + 1)


def _command(command: Command, user: UserState, now: datetime) -> Decision:
    if command.name == "help":
        return Decision(Reply(HELP, "command"), user)
    if command.name == "mode":
        user = replace(user, mode=command.arg)
        text = {
            "cheap": "Mode: cheap. I'll answer with the least expensive model that fits.",
            "balanced": "Mode: balanced. I'll weigh cost, speed and quality.",
            "best": "Mode: best. I'll use the strongest model available.",
        }[command.arg]
        if user.pinned_model:
            text += f" (You pinned {user.pinned_model}; send /model auto to let me choose.)"
        return Decision(Reply(text, "command"), user)
    if command.name == "model":
        if command.arg == "auto":
            user = replace(user, pinned_model="")
            return Decision(Reply("Model: automatic. I'll choose per question.", "command"), user)
        if not command.arg:
            return Decision(ListModels(), user)
        return Decision(PinModel(command.arg), user)
    if command.name == "reset":
        user = replace(user, conversation_id="")
        text = "Done: your next question starts a new conversation."
        return Decision(Reply(text, "command"), user)
    if command.name == "context":
        strategy = "" if command.arg == "default" else command.arg
        user = replace(user, context_strategy=strategy, context_param=command.number)
        shown = command.arg + (f" {command.number}" if command.number else "")
        return Decision(Reply(f"Context: {shown}.", "command"), user)
    if command.name == "cache":
        enabled = command.arg == "on"
        user = replace(user, cache_enabled=enabled)
        text = (
            "Cache on: a question answered before is answered again at once, for free."
            if enabled
            else "Cache off: every question gets a fresh answer."
        )
        return Decision(Reply(text, "command"), user)
    if command.name == "cost":
        return Decision(ShowCost(week_start(now)), user)
    if command.name == "delete":
        return Decision(Erase(), user)
    raise AssertionError(f"unhandled command {command.name}")  # parse_command knows them all


def decide(message: Inbound, user: UserState, policy: ChannelPolicy, now: datetime) -> Decision:
    """What to do with ``message`` from ``user`` at ``now``, and the user's new state."""
    if now - message.sent_at > policy.replay_window:
        return Decision(Ignore("stale"), user)
    last = user.last_inbound_at
    user = replace(
        user, last_inbound_at=message.sent_at if last is None else max(last, message.sent_at)
    )
    if message.kind in _SILENT_KINDS:
        return Decision(Ignore(f"ignored_{message.kind}"), user)
    if policy.rate_limit:
        user = _count_message(user, now, policy)
        if user.rate_count > policy.rate_limit:
            # One polite reply per window; more messages in the same window get silence,
            # or a flood would be answered with a flood.
            if user.rate_count == policy.rate_limit + 1:
                return Decision(Reply(RATE_LIMITED, "rate_limited"), user)
            return Decision(Ignore("rate_limited"), user)
    if message.kind != "text":
        what = message.kind.replace("_", " ")
        return Decision(
            Reply(
                f"Sorry, I can only read text messages, not {what}. "
                "Please type your question (send /help for commands).",
                "unsupported",
            ),
            user,
        )
    try:
        command = parse_command(message.text)
    except CommandError as exc:
        return Decision(Reply(str(exc), "bad_command"), user)
    if command is not None:
        return _command(command, user, now)
    user = _roll_day(user, now)
    if policy.daily_budget_nanousd and user.spend_nanousd >= policy.daily_budget_nanousd:
        return Decision(Reply(OVER_BUDGET, "over_budget"), user)
    return Decision(Ask(message.text.strip()), user)


def _roll_day(user: UserState, now: datetime) -> UserState:
    today = now.date().isoformat()
    if user.spend_day != today:
        return replace(user, spend_day=today, spend_nanousd=0)
    return user


def record_spend(user: UserState, cost_nanousd: int, now: datetime) -> UserState:
    """``user`` after an answer that cost ``cost_nanousd``."""
    user = _roll_day(user, now)
    return replace(user, spend_nanousd=user.spend_nanousd + max(0, cost_nanousd))


def predicted_wait(
    *,
    quoted: timedelta | None,
    streamed: timedelta | None,
    queued: bool = False,
    cache_hit: bool = False,
) -> timedelta:
    """How long the user will wait, from what the gateway said.

    ``quoted``: the gateway's Quote for the model that accepted the question (measured
    latency from the profiler's profiles once a model has enough requests; its catalog
    prior before). ``streamed``: the ETA of AskStream's first message (the catalog prior,
    or — ``queued`` — a capacity-limited backend's queue wait included). A cache hit answers
    at once. The Quote wins unless the stream's ETA knows of a queue; without a Quote (it
    failed) the stream's ETA stands.
    """
    if cache_hit:
        return timedelta(0)
    if queued and streamed is not None:
        return max(streamed, quoted or timedelta(0))
    if quoted is not None:
        return quoted
    return streamed or timedelta(0)


def eta_notice(predicted_wait: timedelta, policy: ChannelPolicy) -> str | None:
    """The "Got it" message when the predicted wait is over the threshold, else None."""
    if predicted_wait <= policy.eta_notice_after:
        return None
    seconds = math.ceil(predicted_wait.total_seconds())
    if seconds >= 120:
        return f"Got it — expect an answer in about {math.ceil(seconds / 60)} minutes."
    return f"Got it — expect an answer in about {seconds} seconds."


def format_usd(nanousd: int) -> str:
    """Nano-USD as dollars with enough digits that small amounts are not shown as $0.00."""
    dollars = nanousd / 1e9
    if nanousd == 0:
        return "$0"
    if abs(dollars) >= 0.01:
        return f"${dollars:,.2f}"
    return f"${dollars:.6f}".rstrip("0").rstrip(".") if abs(dollars) >= 1e-6 else "<$0.000001"


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """The gateway's usage totals for one user over a window."""

    requests: int
    cache_hits: int
    cost_nanousd: int
    saved_nanousd: int


def cost_text(usage: UsageSummary) -> str:
    """The /cost reply."""
    if usage.requests == 0:
        return "No questions answered this week yet."
    questions = "question" if usage.requests == 1 else "questions"
    text = (
        f"This week: {usage.requests} {questions}, cost {format_usd(usage.cost_nanousd)}, "
        f"saved {format_usd(usage.saved_nanousd)} compared with the reference model."
    )
    if usage.cache_hits:
        text += f" {usage.cache_hits} answered from the cache for free."
    return text
