from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from llmproxy.platform.errors import ConfigurationError
from llmproxy.platform.settings import ServiceSettings, load_settings, parse_duration


class _Svc(ServiceSettings):
    service_name: ClassVar[str] = "svc"


def test_defaults_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    settings = load_settings(_Svc)
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.drain_timeout == timedelta(seconds=10)


def test_environment_overrides_and_unprefixed_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://10.0.0.1:4222")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("LLMPROXY_GRPC_PORT", "6000")
    monkeypatch.setenv("LLMPROXY_DRAIN_TIMEOUT", "500ms")
    settings = load_settings(_Svc)
    assert (settings.nats_url, settings.database_url) == (
        "nats://10.0.0.1:4222",
        "postgresql://u@db/x",
    )
    assert settings.grpc_port == 6000
    assert settings.drain_timeout == timedelta(milliseconds=500)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LLMPROXY_GRPC_PORT", "abc", "LLMPROXY_GRPC_PORT: gRPC port"),
        ("LLMPROXY_GRPC_PORT", "70000", "LLMPROXY_GRPC_PORT"),
        ("NATS_URL", "http://x", "NATS_URL: NATS server(s)"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: postgresql://"),
        ("LLMPROXY_DRAIN_TIMEOUT", "soon", "a duration like 10s"),
        ("LLMPROXY_LOG_LEVEL", "loud", "LLMPROXY_LOG_LEVEL"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_expected_form(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_Svc)
    assert expected in caught.value.message
    assert "\n" not in caught.value.message
    assert repr(value) in caught.value.message


def test_toml_file_with_a_service_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "llmproxy.toml"
    config.write_text('log_level = "debug"\ngrpc_port = 7000\n[svc]\ngrpc_port = 7001\n')
    monkeypatch.setenv("LLMPROXY_CONFIG_FILE", str(config))
    monkeypatch.delenv("LLMPROXY_GRPC_PORT", raising=False)
    settings = load_settings(_Svc)
    assert (settings.log_level, settings.grpc_port) == ("debug", 7001)
    monkeypatch.setenv("LLMPROXY_GRPC_PORT", "7002")  # the environment wins over the file
    assert load_settings(_Svc).grpc_port == 7002


def test_unreadable_settings_file_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMPROXY_CONFIG_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match="LLMPROXY_CONFIG_FILE"):
        load_settings(_Svc)


@pytest.mark.parametrize(
    ("text", "seconds"), [("10", 10), ("2.5", 2.5), ("500ms", 0.5), ("2m", 120), ("1h", 3600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_negative_duration_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_duration(-1)
