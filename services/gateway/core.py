"""Pure decisions of the gateway: validating a request, choosing the model, pricing.

No I/O. The request path (``ask.py``) feeds plain data in and acts on what comes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmproxy.gateway.catalog import Catalog, ModelSpec
from llmproxy.platform.errors import InvalidArgumentError

__all__ = ["Choice", "Pricing", "choose_model", "price_answer", "validate_prompt"]

MAX_PROMPT_CHARS = 200_000


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
        raise InvalidArgumentError(
            "give either prompt or messages, not both", field="prompt"
        )
    if not prompt.strip() and not message_count:
        raise InvalidArgumentError("prompt is empty: ask a question", field="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgumentError(
            f"prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}", field="prompt"
        )


def choose_model(catalog: Catalog, *, pinned: str = "", allowed: Sequence[str] = ()) -> Choice:
    """The model to call: the pinned one, else the catalog default among the allowed.

    Learned, preference-driven selection replaces the default in the model-selection work;
    pinning will keep bypassing it.
    """
    if pinned:
        if allowed and pinned not in allowed:
            raise InvalidArgumentError(
                f"pinned model {pinned!r} is not among allowed_models {sorted(allowed)}",
                field="preferences.pinned_model",
            )
        return Choice(catalog.get(pinned), policy="pinned", reason="pinned by the caller")
    if allowed:
        for name in allowed:
            catalog.get(name)  # unknown names are an error, not silently skipped
        if catalog.default_model in allowed:
            return Choice(catalog.get(catalog.default_model), "default", "catalog default")
        return Choice(catalog.get(allowed[0]), "default", "first allowed model")
    return Choice(catalog.get(catalog.default_model), "default", "catalog default")


def price_answer(
    catalog: Catalog,
    model: ModelSpec,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    charged: bool = True,
) -> Pricing:
    """What the answer cost, and what the reference model would have charged for it.

    ``charged=False`` (a cache hit) costs nothing; the whole reference price is saved.
    """
    cost = (
        model.price.cost_nanousd(input_tokens, output_tokens, cached_input_tokens) if charged else 0
    )
    reference = catalog.models[catalog.reference_model]
    reference_cost = reference.price.cost_nanousd(input_tokens, output_tokens)
    return Pricing(
        cost_nanousd=cost,
        reference_cost_nanousd=reference_cost,
        saved_nanousd=max(0, reference_cost - cost),
        reference_model=reference.name,
    )
