"""Context strategies: which of a conversation's turns to send with a new prompt. Pure.

The system prompt is always kept; a strategy never cuts a turn in half (only a single
turn larger than the whole budget is truncated from the front, and flagged). Every plan
reports the tokens sent and the tokens the full history would have needed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "ContextPlan",
    "ContextRequest",
    "PlannedMessage",
    "Strategy",
    "TurnRecord",
    "plan_context",
]

MAX_K = 1000
MIN_TOKEN_BUDGET = 16
MAX_TOKEN_BUDGET = 10_000_000


class Strategy(enum.Enum):
    FULL = "full"
    LAST_K = "last_k"
    TOKEN_BUDGET = "token_budget"
    SUMMARY = "summary"
    RELEVANT = "relevant"


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One stored turn of a conversation."""

    seq: int
    role: str
    content: str
    tokens: int


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ContextRequest:
    strategy: Strategy
    system_prompt: str
    prompt: str
    history: Sequence[TurnRecord]
    k: int = 0
    token_budget: int = 0
    reject_oversized_turn: bool = False


@dataclass(frozen=True, slots=True)
class ContextPlan:
    messages: tuple[PlannedMessage, ...]
    strategy: Strategy
    tokens_sent: int
    tokens_full_history: int
    turns_sent: int
    turns_total: int
    truncated: bool


def _check_bounds(request: ContextRequest) -> None:
    if request.strategy is Strategy.LAST_K and not 1 <= request.k <= MAX_K:
        raise InvalidArgumentError(
            f"k must be between 1 and {MAX_K} for last_k, got {request.k}", field="context.k"
        )
    if request.strategy is Strategy.TOKEN_BUDGET and not (
        MIN_TOKEN_BUDGET <= request.token_budget <= MAX_TOKEN_BUDGET
    ):
        raise InvalidArgumentError(
            f"token_budget must be between {MIN_TOKEN_BUDGET} and {MAX_TOKEN_BUDGET}, "
            f"got {request.token_budget}",
            field="context.token_budget",
        )
    if request.strategy in (Strategy.SUMMARY, Strategy.RELEVANT):
        raise InvalidArgumentError(
            f"context strategy {request.strategy.value!r} is not available yet; "
            "use full, last_k or token_budget",
            field="context.strategy",
        )


def plan_context(request: ContextRequest, count_tokens: Callable[[str], int]) -> ContextPlan:
    """Choose the turns to send for ``request.prompt`` under ``request.strategy``."""
    _check_bounds(request)
    history = list(request.history)
    system_tokens = count_tokens(request.system_prompt) if request.system_prompt else 0
    prompt_tokens = count_tokens(request.prompt)
    full = system_tokens + prompt_tokens + sum(t.tokens for t in history)
    prompt = request.prompt
    truncated = False

    if request.strategy is Strategy.FULL:
        chosen = history
    elif request.strategy is Strategy.LAST_K:
        chosen = history[-request.k :]
    else:  # TOKEN_BUDGET: the most recent whole turns that fit
        room = request.token_budget - system_tokens - prompt_tokens
        if room < 0:
            if request.reject_oversized_turn:
                raise InvalidArgumentError(
                    f"the prompt and system prompt need {system_tokens + prompt_tokens} tokens, "
                    f"over the token_budget of {request.token_budget}",
                    field="context.token_budget",
                )
            prompt = _keep_tail(prompt, request.token_budget - system_tokens, count_tokens)
            prompt_tokens = count_tokens(prompt)
            truncated, room = True, 0
        chosen = []
        for turn in reversed(history):
            if turn.tokens > room:
                break
            chosen.append(turn)
            room -= turn.tokens
        chosen.reverse()

    messages: list[PlannedMessage] = []
    if request.system_prompt:
        messages.append(PlannedMessage("system", request.system_prompt))
    messages.extend(PlannedMessage(t.role, t.content) for t in chosen)
    messages.append(PlannedMessage("user", prompt))
    return ContextPlan(
        messages=tuple(messages),
        strategy=request.strategy,
        tokens_sent=system_tokens + prompt_tokens + sum(t.tokens for t in chosen),
        tokens_full_history=full,
        turns_sent=len(chosen),
        turns_total=len(history),
        truncated=truncated,
    )


def _keep_tail(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """The longest suffix of ``text`` that fits ``budget`` tokens (front truncation)."""
    if budget <= 0:
        return ""
    low, high = 0, len(text)  # binary search on the start offset
    while low < high:
        middle = (low + high) // 2
        if count_tokens(text[middle:]) <= budget:
            high = middle
        else:
            low = middle + 1
    return text[low:]
