"""What the deployment files must agree with, read from the code they deploy.

The environment names each service reads come from its ``Settings`` class (the one module
that reads the environment), so a renamed or removed setting fails the deployment tests
instead of being silently ignored by a running container.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

from pydantic import AliasChoices

from llmproxy.cli import SERVICE_MODULES
from llmproxy.platform.settings import ENV_PREFIX, ServiceSettings

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY = REPOSITORY / "deploy"

#: where a gRPC address or URL setting is left at its 127.0.0.1 default, the container
#: would talk to itself; every such setting must be set in a deployment
_ADDRESS_FIELD = re.compile(r"_(addr|url)$")


def settings_class(service: str) -> type[ServiceSettings]:
    return importlib.import_module(SERVICE_MODULES[service]).Settings  # type: ignore[no-any-return]


def env_names(service: str) -> dict[str, str]:
    """Every environment variable ``service`` reads -> the field it sets."""
    names: dict[str, str] = {}
    for field, info in settings_class(service).model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({str(a): field for a in alias.choices if str(a).isupper()})
        else:
            names[f"{ENV_PREFIX}{field.upper()}"] = field
    return names


def address_settings(service: str) -> dict[str, set[str]]:
    """Settings that point at another process of the stack -> their env names.

    Those are the ``*_addr`` / ``*_url`` settings whose default is this machine (or unset);
    one that defaults to a public endpoint (e.g. the WhatsApp Graph API) may stay as it is.
    """
    fields = settings_class(service).model_fields
    found: dict[str, set[str]] = {}
    for name, field in env_names(service).items():
        default = fields[field].default
        local = default is None or any(h in str(default) for h in ("127.0.0.1", "localhost"))
        if _ADDRESS_FIELD.search(field) and local:
            found.setdefault(field, set()).add(name)
    return found


def unreachable_listeners(service: str, env: dict[str, str]) -> list[str]:
    """Servers a container would bind to 127.0.0.1 (unreachable from other containers).

    The gRPC server always listens; another ``<x>_host`` counts where ``<x>_port`` is set.
    """
    names = env_names(service)
    problems = []
    for name, field in names.items():
        if not field.endswith("_host"):
            continue
        port_field = field.removesuffix("_host") + "_port"
        port_set = any(f == port_field and n in env for n, f in names.items())
        if (field == "grpc_host" or port_set) and env.get(name) != "0.0.0.0":
            problems.append(f"{name}={env.get(name, '(default)')}")
    return problems


def provider_key_names() -> set[str]:
    """Provider API key variables the gateway's catalog reads (not settings, but expected)."""
    catalog = json.loads((REPOSITORY / "services/gateway/catalog.json").read_text())
    return {m["api_key_env"] for m in catalog["models"] if m.get("api_key_env")}
