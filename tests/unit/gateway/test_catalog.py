from decimal import Decimal

import pytest

from llmproxy.gateway.catalog import Price, load_catalog, parse_catalog
from llmproxy.gateway.core import price_answer, validate_prompt
from llmproxy.platform.errors import ConfigurationError, InvalidArgumentError, NotFoundError

DOC = {
    "default_model": "cheap",
    "reference_model": "strong",
    "models": [
        {"name": "cheap", "price_per_million": {"input": 0.15, "output": 0.6}},
        {
            "name": "strong",
            "api_key_env": "STRONG_KEY",
            "price_per_million": {"input": 2.5, "cached_input": 1.25, "output": 10},
        },
    ],
}


def test_cost_is_exact_in_nano_dollars() -> None:
    price = Price(Decimal("2.5"), Decimal("1.25"), Decimal("10"))
    # 1,000 fresh input tokens at $2.50/M = $0.0025; 200 output at $10/M = $0.002
    assert price.cost_nanousd(1000, 200) == 4_500_000
    # 400 of the input cached at half price saves 400 * 1.25 / 1e6 dollars
    assert price.cost_nanousd(1000, 200, cached_input_tokens=400) == 4_000_000
    # a single cheap token costs a fraction of a micro-dollar, still counted
    assert Price(Decimal("0.15"), Decimal("0.15"), Decimal("0.6")).cost_nanousd(1, 0) == 150


def test_models_without_their_key_are_kept_for_prices_but_not_callable() -> None:
    catalog = parse_catalog(DOC, environ={})
    assert [m.name for m in catalog.available()] == ["cheap"]
    assert catalog.reference_model == "strong"
    with pytest.raises(NotFoundError, match="available models: cheap"):
        catalog.get("strong")
    assert parse_catalog(DOC, environ={"STRONG_KEY": "k"}).get("strong").available


def test_saving_is_measured_against_the_reference_model() -> None:
    catalog = parse_catalog(DOC, environ={})
    pricing = price_answer(catalog, catalog.get("cheap"), input_tokens=1000, output_tokens=200)
    assert pricing.cost_nanousd == 270_000
    assert pricing.reference_cost_nanousd == 4_500_000
    assert pricing.saved_nanousd == 4_230_000
    free = price_answer(
        catalog, catalog.get("cheap"), input_tokens=1000, output_tokens=200, charged=False
    )
    assert (free.cost_nanousd, free.saved_nanousd) == (0, 4_500_000)


def test_shipped_catalog_serves_the_local_model_by_default() -> None:
    catalog = load_catalog(
        None, environ={}, overrides={"smollm2-135m-instruct": {"base_url": "http://h:1/v1"}}
    )
    model = catalog.get(catalog.default_model)
    assert (model.name, model.base_url) == ("smollm2-135m-instruct", "http://h:1/v1")


def test_bad_catalog_values_are_named() -> None:
    bad = {"models": [{"name": "m", "price_per_million": {"input": "lots"}}]}
    with pytest.raises(ConfigurationError, match=r"m\.price_per_million\.input"):
        parse_catalog(bad, environ={})


@pytest.mark.parametrize(
    ("prompt", "messages", "match"),
    [("", 0, "prompt is empty"), ("   ", 0, "prompt is empty"), ("hi", 2, "not both")],
)
def test_prompt_validation(prompt: str, messages: int, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        validate_prompt(prompt, messages)
