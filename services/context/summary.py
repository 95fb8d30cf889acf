"""The rolling summary: when to refresh it and what to ask the model. Pure.

After a reply in a conversation that uses the ``summary`` strategy, the service asks
:func:`plan_summary_refresh` whether older turns should be folded into the summary. The
``keep_recent`` newest turns always stay verbatim; folding waits until at least
``min_batch`` turns beyond them have piled up, so the model is called once per few replies,
not after every one. One call folds at most ``max_input_tokens`` of input; a long backlog
takes several calls, each planned from the state the previous one left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmproxy.context.strategies import PlannedMessage, TurnRecord, keep_tail

__all__ = ["SummaryJob", "SummaryPolicy", "plan_summary_refresh"]

_INSTRUCTIONS = (
    "You keep a running summary of a conversation between a user and an assistant. "
    "Update the summary with the new messages. Write short notes. Keep every name, number, "
    "date, place, preference and decision the user stated. Write only the summary."
)
_JOIN_MARGIN = 8
_ROLE_LABELS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}


@dataclass(frozen=True, slots=True)
class SummaryPolicy:
    """When and how much to summarise."""

    #: the newest turns never folded into the summary (sent verbatim)
    keep_recent: int = 6
    #: fold only once this many turns beyond ``keep_recent`` wait
    min_batch: int = 4
    #: most tokens of summariser input per call (instructions, old summary, turns)
    max_input_tokens: int = 1400
    #: most tokens the summariser may write
    max_summary_tokens: int = 300

    def __post_init__(self) -> None:
        if self.keep_recent < 0 or self.min_batch < 1:
            raise ValueError("keep_recent must be >= 0 and min_batch >= 1")
        if self.max_input_tokens < 64 or self.max_summary_tokens < 16:
            raise ValueError("max_input_tokens must be >= 64 and max_summary_tokens >= 16")


@dataclass(frozen=True, slots=True)
class SummaryJob:
    """One call to the summariser: its messages, and the summary state it advances."""

    messages: tuple[PlannedMessage, ...]
    #: the summary state the job was planned from (a writer checks it is still current)
    from_upto_seq: int
    #: the last turn seq the new summary covers
    upto_seq: int
    turns_folded: int


def plan_summary_refresh(
    history: Sequence[TurnRecord],
    *,
    summary: str,
    summary_upto_seq: int,
    policy: SummaryPolicy,
    count_tokens: Callable[[str], int],
) -> SummaryJob | None:
    """The next fold of older turns into the summary, or None when none is due.

    ``history`` is the conversation since its last reset, oldest first; the summary covers
    the turns with ``seq <= summary_upto_seq``.
    """
    pending = [t for t in history if t.seq > summary_upto_seq]
    foldable = pending[: max(0, len(pending) - policy.keep_recent)]
    if len(foldable) < policy.min_batch:
        return None
    head = f"Summary so far:\n{summary or '(none yet)'}\n\nNew messages:\n"
    tail = "\nUpdated summary:"
    # parts are counted apart; a tokenizer may merge a few tokens across the joins
    room = (
        policy.max_input_tokens
        - _JOIN_MARGIN
        - count_tokens(_INSTRUCTIONS)
        - count_tokens(head)
        - count_tokens(tail)
    )
    lines: list[str] = []
    folded: list[TurnRecord] = []
    for turn in foldable:
        line = f"{_ROLE_LABELS.get(turn.role, turn.role)}: {turn.content}\n"
        cost = count_tokens(line)
        if cost > room:
            if folded:
                break
            # a single turn larger than a whole call: its end is kept, as when sending it
            line = keep_tail(line, max(room, 1), count_tokens)
            cost = room
        lines.append(line)
        folded.append(turn)
        room -= cost
    return SummaryJob(
        messages=(
            PlannedMessage("system", _INSTRUCTIONS),
            PlannedMessage("user", head + "".join(lines) + tail),
        ),
        from_upto_seq=summary_upto_seq,
        upto_seq=folded[-1].seq,
        turns_folded=len(folded),
    )
