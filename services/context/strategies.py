"""Context strategies: which of a conversation's turns to send with a new prompt. Pure.

The system prompt is always kept; a strategy never cuts a turn in half (only a single
turn larger than the whole budget is truncated from the front, and flagged). Whatever the
strategy chose must then fit the model's context window (less the room left for the
answer): the oldest chosen turns are dropped whole until it does, and the plan says how
many. Every plan reports the tokens sent and the tokens the full history would have needed.

* ``full`` — every turn since the last reset.
* ``last_k`` — the ``k`` most recent turns.
* ``token_budget`` — the most recent whole turns that fit ``token_budget`` tokens together
  with the system prompt and the prompt.
* ``summary`` — the conversation's rolling summary (one system message standing for the
  turns it covers), then every turn it does not cover yet, verbatim. The summary is written
  off the request path (see :mod:`llmproxy.context.summary`); until one exists every turn
  is sent.
* ``relevant`` — the ``k`` earlier turns most similar to the prompt (cosine of the
  embeddings the caller passes in), plus the last turn, in conversation order.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_RELEVANT_K",
    "MAX_K",
    "MAX_TOKEN_BUDGET",
    "MIN_TOKEN_BUDGET",
    "SUMMARY_HEADER",
    "ContextDefaults",
    "ContextPlan",
    "ContextRequest",
    "HistoryVectors",
    "PlannedMessage",
    "Strategy",
    "TurnRecord",
    "check_bounds",
    "keep_tail",
    "plan_context",
]

MAX_K = 1000
MIN_TOKEN_BUDGET = 16
MAX_TOKEN_BUDGET = 10_000_000
#: ``relevant`` with k = 0 sends this many similar turns (plus the last one)
DEFAULT_RELEVANT_K = 4
#: how a summary is introduced to the model
SUMMARY_HEADER = "Summary of the earlier conversation:\n"
#: what a chat template adds per message, beyond its content (the gateway counts the same)
TOKENS_PER_MESSAGE = 4


class Strategy(enum.Enum):
    FULL = "full"
    LAST_K = "last_k"
    TOKEN_BUDGET = "token_budget"
    SUMMARY = "summary"
    RELEVANT = "relevant"


@dataclass(frozen=True, slots=True)
class ContextDefaults:
    """What a request that names no strategy (or no k for ``relevant``) gets."""

    #: the service-wide default strategy
    strategy: Strategy = Strategy.RELEVANT
    #: per-app default strategies, by app id (over ``strategy``)
    app_strategies: Mapping[str, Strategy] = field(default_factory=dict)
    #: k of ``relevant`` when the request says 0
    relevant_k: int = DEFAULT_RELEVANT_K

    def strategy_for(self, app_id: str, requested: Strategy | None) -> Strategy:
        """The request's strategy, else the app's default, else the service's."""
        if requested is not None:
            return requested
        return self.app_strategies.get(app_id, self.strategy)


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One stored turn of a conversation."""

    seq: int
    role: str
    content: str
    tokens: int
    #: L2-normalised embedding of ``content``; needed by ``relevant`` only
    embedding: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class HistoryVectors:
    """The embeddings of a history's turns as one matrix (rows in history order).

    ``relevant`` ranks with one matrix product; a caller that keeps this (the service's
    history cache) saves stacking the turns' vectors on every request.
    """

    #: ``(turns, dimensions)`` float32; a row of a turn without an embedding is zeros
    matrix: npt.NDArray[np.float32]
    #: ``(turns,)`` bool: the row holds the turn's embedding
    embedded: npt.NDArray[np.bool_]
    #: ``(turns,)`` int64: the turns' seqs
    seqs: npt.NDArray[np.int64]

    @classmethod
    def empty(cls, dimensions: int) -> HistoryVectors:
        return cls(
            np.zeros((0, dimensions), dtype=np.float32),
            np.zeros(0, dtype=bool),
            np.zeros(0, dtype=np.int64),
        )

    @classmethod
    def of(cls, turns: Sequence[TurnRecord], dimensions: int) -> HistoryVectors:
        """Stack ``turns``' embeddings (zeros where a turn has none)."""
        matrix = np.zeros((len(turns), dimensions), dtype=np.float32)
        embedded = np.zeros(len(turns), dtype=bool)
        for index, turn in enumerate(turns):
            if turn.embedding is not None:
                matrix[index] = turn.embedding
                embedded[index] = True
        return cls(matrix, embedded, np.array([t.seq for t in turns], dtype=np.int64))


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ContextRequest:
    """Everything a strategy decides on."""

    strategy: Strategy
    system_prompt: str
    prompt: str
    #: the turns since the last reset, oldest first
    history: Sequence[TurnRecord]
    #: last_k: turns to send (1..MAX_K); relevant: similar turns (0 = DEFAULT_RELEVANT_K)
    k: int = 0
    token_budget: int = 0
    #: reject (instead of truncating) a prompt larger than the token budget
    reject_oversized_turn: bool = False
    #: the rolling summary and the last turn seq it covers (summary strategy)
    summary: str = ""
    summary_upto_seq: int = 0
    #: L2-normalised embedding of ``prompt`` (relevant strategy)
    prompt_embedding: npt.NDArray[np.float32] | None = field(
        default=None, compare=False, repr=False
    )
    #: the history's embeddings as one matrix, rows aligned with ``history`` (relevant;
    #: optional: without it the turns' own ``embedding`` are stacked)
    history_vectors: HistoryVectors | None = field(default=None, compare=False, repr=False)
    #: the most input tokens the model can take (its window less the answer's room; 0: any)
    max_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ContextPlan:
    """The messages to send, and what sending them saved."""

    messages: tuple[PlannedMessage, ...]
    strategy: Strategy
    tokens_sent: int
    tokens_full_history: int
    #: turns sent verbatim
    turns_sent: int
    turns_total: int
    truncated: bool
    #: turns represented by the summary instead of verbatim
    turns_summarized: int = 0
    #: turns the strategy chose that the context window could not take
    turns_dropped_for_window: int = 0


def check_bounds(request: ContextRequest) -> None:
    """Raise InvalidArgumentError naming the bound a parameter is outside of."""
    if request.strategy is Strategy.LAST_K and not 1 <= request.k <= MAX_K:
        raise InvalidArgumentError(
            f"k must be between 1 and {MAX_K} for last_k, got {request.k}", field="context.k"
        )
    if request.strategy is Strategy.RELEVANT and not 0 <= request.k <= MAX_K:
        raise InvalidArgumentError(
            f"k must be between 1 and {MAX_K} for relevant (0: {DEFAULT_RELEVANT_K}), "
            f"got {request.k}",
            field="context.k",
        )
    if request.strategy is Strategy.TOKEN_BUDGET and not (
        MIN_TOKEN_BUDGET <= request.token_budget <= MAX_TOKEN_BUDGET
    ):
        raise InvalidArgumentError(
            f"token_budget must be between {MIN_TOKEN_BUDGET} and {MAX_TOKEN_BUDGET}, "
            f"got {request.token_budget}",
            field="context.token_budget",
        )


def plan_context(request: ContextRequest, count_tokens: Callable[[str], int]) -> ContextPlan:
    """Choose the turns to send for ``request.prompt`` under ``request.strategy``."""
    check_bounds(request)
    history = list(request.history)
    system_tokens = count_tokens(request.system_prompt) if request.system_prompt else 0
    prompt_tokens = count_tokens(request.prompt)
    full = system_tokens + prompt_tokens + sum(t.tokens for t in history)
    prompt = request.prompt
    truncated = False
    summary: PlannedMessage | None = None
    summary_tokens = turns_summarized = 0

    if request.strategy is Strategy.FULL:
        chosen = history
    elif request.strategy is Strategy.LAST_K:
        chosen = history[-request.k :]
    elif request.strategy is Strategy.RELEVANT:
        chosen = _most_relevant(history, request)
    elif request.strategy is Strategy.SUMMARY:
        chosen = history
        if request.summary and request.summary_upto_seq > 0:
            chosen = [t for t in history if t.seq > request.summary_upto_seq]
            turns_summarized = len(history) - len(chosen)
            summary = PlannedMessage("system", SUMMARY_HEADER + request.summary)
            summary_tokens = count_tokens(summary.content)
    else:  # TOKEN_BUDGET: the most recent whole turns that fit
        room = request.token_budget - system_tokens - prompt_tokens
        if room < 0:
            if request.reject_oversized_turn:
                raise InvalidArgumentError(
                    f"the prompt and system prompt need {system_tokens + prompt_tokens} tokens, "
                    f"over the token_budget of {request.token_budget}",
                    field="context.token_budget",
                )
            prompt = keep_tail(prompt, request.token_budget - system_tokens, count_tokens)
            prompt_tokens = count_tokens(prompt)
            truncated, room = True, 0
        chosen = []
        for turn in reversed(history):
            if turn.tokens > room:
                break
            chosen.append(turn)
            room -= turn.tokens
        chosen.reverse()

    dropped = 0
    if request.max_input_tokens > 0:
        overhead = TOKENS_PER_MESSAGE * (1 + (summary is not None) + bool(request.system_prompt))
        fixed = system_tokens + prompt_tokens + overhead
        chosen_tokens = sum(t.tokens + TOKENS_PER_MESSAGE for t in chosen)
        while chosen and fixed + summary_tokens + chosen_tokens > request.max_input_tokens:
            chosen_tokens -= chosen[0].tokens + TOKENS_PER_MESSAGE
            chosen = chosen[1:]  # the oldest whole turn goes first
            dropped += 1
        if summary is not None and fixed + summary_tokens > request.max_input_tokens:
            dropped += turns_summarized  # the turns it stood for go with it
            summary, summary_tokens, turns_summarized = None, 0, 0
        if fixed > request.max_input_tokens:
            if request.reject_oversized_turn:
                raise InvalidArgumentError(
                    f"the prompt and system prompt need {fixed} tokens; the model takes "
                    f"{request.max_input_tokens} (its context window less the answer's room)",
                    field="prompt",
                )
            room = request.max_input_tokens - system_tokens - overhead
            prompt = keep_tail(prompt, room, count_tokens)
            prompt_tokens = count_tokens(prompt)
            truncated = True

    messages: list[PlannedMessage] = []
    if request.system_prompt:
        messages.append(PlannedMessage("system", request.system_prompt))
    if summary is not None:
        messages.append(summary)
    messages.extend(PlannedMessage(t.role, t.content) for t in chosen)
    messages.append(PlannedMessage("user", prompt))
    return ContextPlan(
        messages=tuple(messages),
        strategy=request.strategy,
        tokens_sent=system_tokens + summary_tokens + prompt_tokens + sum(t.tokens for t in chosen),
        tokens_full_history=full,
        turns_sent=len(chosen),
        turns_total=len(history),
        truncated=truncated,
        turns_summarized=turns_summarized,
        turns_dropped_for_window=dropped,
    )


def _most_relevant(history: list[TurnRecord], request: ContextRequest) -> list[TurnRecord]:
    """The k earlier turns most similar to the prompt, plus the last turn, in order.

    Ties go to the more recent turn. A turn without an embedding is never picked for
    similarity (it can still be the last turn).
    """
    if not history:
        return []
    if request.prompt_embedding is None:
        raise ValueError("the relevant strategy needs the prompt's embedding")
    k = request.k or DEFAULT_RELEVANT_K
    vectors = request.history_vectors
    if vectors is None:
        vectors = HistoryVectors.of(history, len(request.prompt_embedding))
    elif len(vectors.seqs) != len(history) or (
        len(history) and (vectors.seqs[0] != history[0].seq or vectors.seqs[-1] != history[-1].seq)
    ):
        raise ValueError("history_vectors must have one row per history turn, in order")
    picked: set[int] = {history[-1].seq}
    earlier = np.flatnonzero(vectors.embedded[:-1])
    if len(earlier):
        prompt = np.asarray(request.prompt_embedding, dtype=np.float32)
        scores = (vectors.matrix[:-1] @ prompt)[earlier]  # no copy of the rows
        seqs = vectors.seqs[earlier]
        # lexsort sorts by the last key first: highest score, then highest (latest) seq
        order = np.lexsort((-seqs, -scores))
        picked.update(int(seqs[i]) for i in order[:k])
    return [t for t in history if t.seq in picked]


def keep_tail(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
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
