import pytest

from llmproxy.context.service import Settings
from llmproxy.platform.errors import ConfigurationError
from llmproxy.platform.settings import load_settings


def test_the_default_strategy_is_relevant_with_four_similar_turns() -> None:
    settings = load_settings(Settings)
    assert (settings.default_strategy, settings.relevant_k) == ("relevant", 4)


def test_per_app_defaults_are_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPROXY_APP_STRATEGIES", '{"whatsapp": "summary"}')
    assert load_settings(Settings).app_strategies == {"whatsapp": "summary"}


def test_turning_embeddings_off_under_a_relevant_default_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"LLMPROXY_EMBEDDINGS: .*relevant"):
        load_settings(Settings, embeddings=False)
    assert not load_settings(Settings, embeddings=False, default_strategy="full").embeddings


def test_an_unknown_strategy_name_is_refused_with_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMPROXY_DEFAULT_STRATEGY", "everything")
    with pytest.raises(ConfigurationError, match="LLMPROXY_DEFAULT_STRATEGY"):
        load_settings(Settings)
