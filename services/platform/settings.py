"""Settings: the one module that reads the environment (and an optional TOML file).

Each service declares its own frozen settings class deriving from :class:`ServiceSettings`.
Values come from, highest priority first: environment variables (``LLMPROXY_<FIELD>``;
``NATS_URL`` and ``DATABASE_URL`` are also read unprefixed), the TOML file named by
``LLMPROXY_CONFIG_FILE`` (a table per service, e.g. ``[gateway]``, over a shared top level),
then the defaults. :func:`load_settings` validates everything at start and turns the first
bad value into a :class:`ConfigurationError` naming the variable and the expected form.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from llmproxy.platform.errors import ConfigurationError

__all__ = ["ENV_PREFIX", "Duration", "ServiceSettings", "load_settings", "parse_duration"]

ENV_PREFIX = "LLMPROXY_"
CONFIG_FILE_ENV = "LLMPROXY_CONFIG_FILE"

S = TypeVar("S", bound="ServiceSettings")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> timedelta:
    """Read ``10``, ``2.5``, ``500ms``, ``10s``, ``2m``, ``1h`` (plain numbers are seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("a duration like 10s, 500ms, 2m or a number of seconds")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration >= 0")
    return timedelta(seconds=seconds)


#: a duration setting: accepts 10, 2.5, 500ms, 10s, 2m, 1h
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class ServiceSettings(BaseSettings):
    """What every service needs to run."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    #: the service's table in the TOML settings file
    service_name: ClassVar[str] = ""

    grpc_host: str = Field("127.0.0.1", description="address the gRPC server binds")
    grpc_port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 picks a free one")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics port; unset: off, 0: a free one"
    )
    drain_timeout: Duration = Field(
        timedelta(seconds=10), description="on SIGTERM, how long in-flight work may finish"
    )
    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        validation_alias=AliasChoices("NATS_URL", f"{ENV_PREFIX}NATS_URL", "nats_url"),
        pattern=r"^(nats|tls)://[^\s]+$",
        description="NATS server(s), comma-separated nats:// URLs",
    )
    database_url: str = Field(
        "sqlite:///llmproxy.db",
        validation_alias=AliasChoices("DATABASE_URL", f"{ENV_PREFIX}DATABASE_URL", "database_url"),
        pattern=r"^(postgres|postgresql|sqlite)(\+\w+)?://.*$",
        description="postgresql://user@host/db or sqlite:///path",
    )
    connect_retries: int = Field(
        5,
        ge=0,
        le=100,
        description="retries after a failed first attempt to reach NATS / the database at start",
    )
    connect_backoff: Duration = Field(
        timedelta(seconds=0.5), description="first wait between attempts; doubles each time"
    )
    otel_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_ENDPOINT", f"{ENV_PREFIX}OTEL_ENDPOINT", "otel_endpoint"
        ),
        pattern=r"^(https?://\S+)?$",
        description="OTLP/HTTP collector base URL for traces, e.g. http://collector:4318; "
        "unset or empty: traces are not exported",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    instance_id: str = Field(
        default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}",
        description="unique per replica (names broadcast consumers, shows in logs)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlFileSource(settings_cls)


class _TomlFileSource(PydanticBaseSettingsSource):
    """Values from the TOML file in ``LLMPROXY_CONFIG_FILE``: top level, then ``[<service>]``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ is overridden

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_FILE_ENV)
        if not path:
            return {}
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(
                f"{CONFIG_FILE_ENV}: cannot read TOML settings file {path!r}: {exc}"
            ) from exc
        service = getattr(self.settings_cls, "service_name", "")
        merged = {k: v for k, v in data.items() if not isinstance(v, dict)}
        if service and isinstance(data.get(service), dict):
            merged.update(data[service])
        return merged


def _field_and_env_name(settings_cls: type[BaseSettings], loc: str) -> tuple[str, str]:
    """The field behind an error location (a field name or one of its aliases) and its env var."""
    for name, info in settings_cls.model_fields.items():
        aliases = (
            [str(a) for a in info.validation_alias.choices]
            if isinstance(info.validation_alias, AliasChoices)
            else []
        )
        if loc == name or loc in aliases:
            return name, aliases[0] if aliases else f"{ENV_PREFIX}{name.upper()}"
    return loc, f"{ENV_PREFIX}{loc.upper()}"


def load_settings(settings_cls: type[S], **overrides: Any) -> S:
    """Build and validate ``settings_cls``; raise ConfigurationError naming a bad setting."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        field, env_name = _field_and_env_name(
            settings_cls, str(error["loc"][0]) if error["loc"] else "?"
        )
        info = settings_cls.model_fields.get(field)
        value = error.get("input")
        message = str(error["msg"]).removeprefix("Value error, ")
        expected = f"{info.description} — " if info is not None and info.description else ""
        got = "" if isinstance(value, dict) else f", got {value!r}"
        raise ConfigurationError(f"{env_name}: {expected}{message}{got}") from None
