"""The model catalog: which models exist, where they are served, what they cost.

Pure: reads a JSON document into immutable records; no I/O beyond the loader helpers.
Prices are in US dollars per million tokens, as providers publish them; costs are
computed in integer nano-dollars so budgets add up exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from llmproxy.platform.errors import ConfigurationError, NotFoundError

__all__ = ["Catalog", "ModelSpec", "Price", "load_catalog", "parse_catalog"]

_NANO_PER_DOLLAR = Decimal(1_000_000_000)
_TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal

    def cost_nanousd(
        self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
    ) -> int:
        """Exact cost of one call in nano-dollars (rounded half up once, at the end)."""
        fresh = max(0, input_tokens - cached_input_tokens)
        dollars = (
            self.input * fresh
            + self.cached_input * cached_input_tokens
            + self.output * output_tokens
        ) / _TOKENS_PER_PRICE_UNIT
        return int((dollars * _NANO_PER_DOLLAR).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    provider: str
    #: the model id the provider expects
    provider_model: str
    price: Price
    context_window: int
    #: OpenAI-compatible base URL; empty for providers with their own adapter
    base_url: str = ""
    #: environment variable holding the API key; empty when none is needed
    api_key_env: str = ""
    #: at most this many requests at once (a self-hosted server's slots); 0 = no limit
    capacity_slots: int = 0
    #: False when its API key is not configured: kept for prices (quotes, savings), never called
    available: bool = True
    #: prior probability of a good answer, 0..1 (0 = unknown), until the profiler knows better
    quality: float = 0.0
    #: typical wait for the first token, and generation speed (for quotes)
    first_token_ms: float = 500.0
    output_tokens_per_s: float = 50.0

    def estimated_latency_s(self, output_tokens: int) -> float:
        """Typical time to answer with ``output_tokens`` tokens (a prior, for quotes)."""
        return self.first_token_ms / 1000 + output_tokens / max(self.output_tokens_per_s, 1e-9)


@dataclass(frozen=True, slots=True)
class Catalog:
    models: Mapping[str, ModelSpec]
    default_model: str
    #: the model savings are measured against ("what it would have cost")
    reference_model: str

    def get(self, name: str) -> ModelSpec:
        """A model that can be called now."""
        model = self.models.get(name)
        if model is None or not model.available:
            known = ", ".join(sorted(m.name for m in self.models.values() if m.available))
            raise NotFoundError(f"unknown model {name!r}; available models: {known}")
        return model

    def available(self) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.available]


def _decimal(value: Any, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        raise ConfigurationError(f"catalog: {where} must be a number, got {value!r}") from None
    if result < 0:
        raise ConfigurationError(f"catalog: {where} must be >= 0, got {value!r}")
    return result


def parse_catalog(
    document: Mapping[str, Any],
    *,
    environ: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Catalog:
    """Build a catalog from its JSON document.

    A model whose ``api_key_env`` is not set in ``environ`` is marked unavailable: provider
    keys in the environment are what add real providers; without one the model's prices
    still serve as the savings reference. ``overrides`` patch fields per model
    (e.g. the local model's ``base_url``, known only at run time).
    """
    models: dict[str, ModelSpec] = {}
    for raw in document.get("models", []):
        raw = {**raw, **(overrides or {}).get(raw.get("name", ""), {})}
        name = raw.get("name")
        if not name:
            raise ConfigurationError(f"catalog: a model entry has no name: {raw!r}")
        key_env = raw.get("api_key_env", "")
        price = raw.get("price_per_million", {})
        models[name] = ModelSpec(
            name=name,
            provider=raw.get("provider", "openai-compatible"),
            provider_model=raw.get("provider_model", name),
            price=Price(
                input=_decimal(price.get("input", 0), f"{name}.price_per_million.input"),
                cached_input=_decimal(
                    price.get("cached_input", price.get("input", 0)),
                    f"{name}.price_per_million.cached_input",
                ),
                output=_decimal(price.get("output", 0), f"{name}.price_per_million.output"),
            ),
            context_window=int(raw.get("context_window", 2048)),
            base_url=raw.get("base_url", ""),
            api_key_env=key_env,
            capacity_slots=int(raw.get("capacity_slots", 0)),
            available=not key_env or bool(environ.get(key_env)),
            quality=float(raw.get("quality", 0.0)),
            first_token_ms=float(raw.get("first_token_ms", 500.0)),
            output_tokens_per_s=float(raw.get("output_tokens_per_s", 50.0)),
        )
    usable = [m.name for m in models.values() if m.available]
    if not usable:
        raise ConfigurationError("catalog: no usable model (check base URLs and API keys)")
    default = document.get("default_model", "")
    if default not in usable:
        default = usable[0]
    reference = document.get("reference_model", "")
    if reference not in models:
        reference = max(models.values(), key=lambda m: (m.price.output, m.price.input)).name
    return Catalog(models=models, default_model=default, reference_model=reference)


def load_catalog(
    path: str | None,
    *,
    environ: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Catalog:
    """Read the catalog file at ``path``, or the one shipped with LLMProxy when None."""
    try:
        text = (
            Path(path).read_text()
            if path
            else resources.files("llmproxy.gateway").joinpath("catalog.json").read_text()
        )
        document = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(
            f"LLMPROXY_CATALOG_FILE: cannot read catalog {path!r}: {exc}"
        ) from exc
    return parse_catalog(document, environ=environ, overrides=overrides)
