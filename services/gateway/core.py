"""Pure decisions of the gateway: validating a request, choosing the model, pricing.

No I/O. The request path (``ask.py``) feeds plain data in and acts on what comes out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmproxy.gateway.catalog import Catalog, ModelSpec
from llmproxy.gateway.limits import Amounts
from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "Choice",
    "Pricing",
    "QuoteLine",
    "backoff_delays",
    "check_context_window",
    "estimate_request",
    "fallback_chain",
    "output_budget",
    "price_answer",
    "stronger_model",
    "validate_messages",
    "validate_prompt",
]

MAX_PROMPT_CHARS = 200_000
#: the whole message list of one request
MAX_TOTAL_CHARS = 1_000_000
MAX_MESSAGES = 1_000
#: tokens OpenAI-style chat formats add per message (role, separators); counted so the
#: estimate and the context-window check do not undercount many short messages
TOKENS_PER_MESSAGE = 4
#: output assumed by a quote when the caller sets no max_tokens
QUOTE_OUTPUT_TOKENS = 256


@dataclass(frozen=True, slots=True)
class Choice:
    model: ModelSpec
    policy: str
    reason: str


@dataclass(frozen=True, slots=True)
class Pricing:
    cost_nanousd: int
    reference_cost_nanousd: int
    saved_nanousd: int
    reference_model: str


def validate_prompt(prompt: str, message_count: int) -> None:
    """Exactly one of a prompt or a message list, not empty, not absurdly large."""
    if prompt and message_count:
        raise InvalidArgumentError("give either prompt or messages, not both", field="prompt")
    if not prompt.strip() and not message_count:
        raise InvalidArgumentError("prompt is empty: ask a question", field="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgumentError(
            f"prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}", field="prompt"
        )


def validate_messages(contents: Sequence[str]) -> None:
    """A message list: not empty, not all blank, no message or total over the limits."""
    if len(contents) > MAX_MESSAGES:
        raise InvalidArgumentError(
            f"{len(contents)} messages; the limit is {MAX_MESSAGES}", field="messages"
        )
    if not any(c.strip() for c in contents):
        raise InvalidArgumentError("every message is empty: ask a question", field="messages")
    for index, content in enumerate(contents):
        if len(content) > MAX_PROMPT_CHARS:
            raise InvalidArgumentError(
                f"message {index} is {len(content)} characters; the limit is {MAX_PROMPT_CHARS}",
                field=f"messages[{index}].content",
            )
    total = sum(len(c) for c in contents)
    if total > MAX_TOTAL_CHARS:
        raise InvalidArgumentError(
            f"the messages total {total} characters; the limit is {MAX_TOTAL_CHARS}",
            field="messages",
        )


def check_context_window(model: ModelSpec, input_tokens: int, max_tokens: int | None) -> None:
    """InvalidArgumentError when the prompt (plus the asked-for output) cannot fit the model."""
    if input_tokens >= model.context_window:
        raise InvalidArgumentError(
            f"the prompt is {input_tokens} tokens; {model.name}'s context window is "
            f"{model.context_window} tokens",
            field="messages",
        )
    if max_tokens and input_tokens + max_tokens > model.context_window:
        raise InvalidArgumentError(
            f"the prompt ({input_tokens} tokens) plus max_tokens ({max_tokens}) exceeds "
            f"{model.name}'s context window of {model.context_window} tokens",
            field="max_tokens",
        )


def output_budget(
    model: ModelSpec, input_tokens: int, requested: int | None, default_cap: int
) -> int:
    """The most output tokens a request may produce: what was asked, else a default cap.

    The reservation is priced on this, so it bounds the real cost only if the provider is
    told the same ``max_tokens`` — the request path does so whenever a limit applies.
    """
    room = max(1, model.context_window - input_tokens)
    return min(requested, room) if requested else min(default_cap, room)


def estimate_request(model: ModelSpec, input_tokens: int, max_output_tokens: int) -> Amounts:
    """The most a request can use: its prompt plus ``max_output_tokens`` at full price."""
    return Amounts(
        cost_nanousd=model.price.cost_nanousd(input_tokens, max_output_tokens),
        requests=1,
        tokens=input_tokens + max_output_tokens,
    )


def fallback_chain(
    catalog: Catalog, choice: Choice, *, pinned: bool, allowed: Sequence[str] = ()
) -> tuple[ModelSpec, ...]:
    """The chosen model, then the models to fall back to, in order.

    A pinned model never falls back (the caller asked for exactly it). Otherwise the next
    candidates are the allowed models in the caller's order, or every callable model of
    the catalog in catalog order.
    """
    if pinned:
        return (choice.model,)
    names = list(allowed) if allowed else [m.name for m in catalog.available()]
    rest = [
        catalog.models[n]
        for n in names
        if n != choice.model.name and n in catalog.models and catalog.models[n].available
    ]
    return (choice.model, *rest)


def backoff_delays(
    retries: int, *, base_s: float, cap_s: float, jitter: Callable[[], float]
) -> list[float]:
    """Waits before each retry: exponential from ``base_s``, capped, with full jitter.

    ``jitter()`` returns a number in [0, 1) (injected: seeded in tests); full jitter spreads
    the retries of many callers hit by the same outage.
    """
    return [min(cap_s, base_s * 2**i) * (0.5 + jitter() / 2) for i in range(retries)]


def stronger_model(catalog: Catalog, current: str) -> ModelSpec | None:
    """The callable model one step up in quality (then price) from ``current``, if any."""
    ranked = sorted(catalog.available(), key=lambda m: (m.quality, m.price.output, m.name))
    names = [m.name for m in ranked]
    if current not in names:
        return ranked[-1] if ranked else None
    index = names.index(current)
    return ranked[index + 1] if index + 1 < len(ranked) else None


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One option of a quote (pure data; the servicer turns it into protobuf)."""

    model: ModelSpec
    estimated_cost_nanousd: int
    estimated_latency_s: float
    selected: bool
    within_constraints: bool
    excluded_reason: str


def price_answer(
    catalog: Catalog,
    model: ModelSpec,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    charged: bool = True,
    reference_model: str = "",
) -> Pricing:
    """What the answer cost, and what the reference model would have charged for it.

    ``charged=False`` (a cache hit) costs nothing; the whole reference price is saved.
    ``reference_model`` (the tenant's) replaces the catalog's reference when it is known.
    """
    cost = (
        model.price.cost_nanousd(input_tokens, output_tokens, cached_input_tokens) if charged else 0
    )
    reference = catalog.models.get(reference_model) or catalog.models[catalog.reference_model]
    reference_cost = reference.price.cost_nanousd(input_tokens, output_tokens)
    return Pricing(
        cost_nanousd=cost,
        reference_cost_nanousd=reference_cost,
        saved_nanousd=max(0, reference_cost - cost),
        reference_model=reference.name,
    )
