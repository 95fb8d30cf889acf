"""deploy/k8s/: every manifest valid against a pinned Kubernetes API, and consistent with
the code: every service deployed with settings it reads, probed on its gRPC health port."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from llmproxy.cli import SERVICE_MODULES, build_parser
from llmproxy.platform.settings import load_settings
from tests.deploy.expectations import (
    DEPLOY,
    address_settings,
    env_names,
    provider_key_names,
    settings_class,
    unreachable_listeners,
)

kubernetes_validate = pytest.importorskip("kubernetes_validate")

#: the Kubernetes version the manifests target (gRPC probes are GA since 1.27)
KUBERNETES_VERSION = "1.30.0"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
NAMESPACE = "llmproxy"


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in _documents() if d["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as Kubernetes assembles it (envFrom, then env)."""
    config_maps, secrets = _by_kind("ConfigMap"), _by_kind("Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        elif source["secretRef"]["name"] not in secrets and source["secretRef"].get("optional"):
            continue  # created by the operator (documented next to the reference)
        else:
            secret = secrets[source["secretRef"]["name"]]
            env.update(secret.get("stringData", {}))
            env.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
    env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
    return env


def test_the_manifests_exist_for_every_service() -> None:
    assert MANIFESTS, "no manifests in deploy/k8s"
    deployments = _by_kind("Deployment")
    for name in SERVICE_MODULES:
        assert name in deployments, f"no Deployment for {name}"
        assert name in _by_kind("Service"), f"no Service for {name}"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_document_is_valid_against_the_pinned_kubernetes_schema(path) -> None:  # type: ignore[no-untyped-def]
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents
    for document in documents:
        # strict: an unknown or misspelt field is an error, not silently dropped
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == NAMESPACE


def test_the_validator_rejects_a_broken_manifest() -> None:
    # proves the test above can fail: a probe with a misspelt field and a string port
    deployment = _by_kind("Deployment")["gateway"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    _container(broken)["readinessProbe"] = {"grpcc": {"port": "50051"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(SERVICE_MODULES))
def test_each_deployment_runs_its_service_probed_on_grpc_health_with_requests(name: str) -> None:
    deployment = _by_kind("Deployment")[name]
    container = _container(deployment)
    assert container["args"] == ["serve", name]
    port = int(_environment(container)["LLMPROXY_GRPC_PORT"])
    assert {"name": "grpc", "containerPort": port} in container["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, f"{name}: {probe}"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    service = _by_kind("Service")[name]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert any(p["port"] == port for p in service["spec"]["ports"])


@pytest.mark.parametrize("name", sorted(SERVICE_MODULES))
def test_each_deployment_sets_only_settings_it_reads_and_they_validate(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _environment(_container(_by_kind("Deployment")[name]))
    readable = set(env_names(name)) | provider_key_names()
    unknown = sorted(set(env) - readable)
    assert not unknown, f"{name} ignores {unknown}: not in {settings_class(name).__name__}"
    for field, names in address_settings(name).items():
        assert names & set(env), f"{name}: {field} ({sorted(names)}) would stay at 127.0.0.1"
    assert not unreachable_listeners(name, env), "bind 0.0.0.0 in a container"
    for variable in list(os.environ):
        if variable.startswith("LLMPROXY_") or variable in ("NATS_URL", "DATABASE_URL"):
            monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings(settings_class(name))
    assert settings.grpc_host == "0.0.0.0"
    assert settings.nats_url.count("nats://") == 3  # every node of the cluster


def test_peer_addresses_name_a_service_port() -> None:
    services = {
        name: {p["port"] for p in s["spec"]["ports"]} for name, s in _by_kind("Service").items()
    }
    checked = 0
    for name in SERVICE_MODULES:
        for variable, value in _environment(_container(_by_kind("Deployment")[name])).items():
            match = re.fullmatch(r"(?:\w+://)?([\w.-]+):(\d+)(?:/.*)?", value)
            if variable.endswith(("_ADDR", "_URL")) and match and variable != "DATABASE_URL":
                host, port = match.group(1), int(match.group(2))
                assert port in services.get(host, set()), f"{name}: {variable}={value}"
                checked += 1
    assert checked >= 4


def test_nats_is_a_three_node_jetstream_cluster_on_persistent_volumes() -> None:
    nats = _by_kind("StatefulSet")["nats"]
    replicas = nats["spec"]["replicas"]
    assert replicas == 3
    headless = _by_kind("Service")[nats["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    config = _by_kind("ConfigMap")["nats-config"]["data"]["nats.conf"]
    assert "jetstream" in config and "store_dir: /data" in config
    routes = re.findall(r"nats://(nats-\d+)\.(\S+):6222", config)
    assert sorted(r[0] for r in routes) == [f"nats-{i}" for i in range(replicas)]
    assert {r[1] for r in routes} == {nats["spec"]["serviceName"]}
    (claim,) = nats["spec"]["volumeClaimTemplates"]
    mounts = _container(nats)["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in mounts
    # the services' NATS_URL lists exactly those nodes
    common = _by_kind("ConfigMap")["llmproxy-common"]["data"]["NATS_URL"]
    assert sorted(re.findall(r"(nats-\d+)\.", common)) == [f"nats-{i}" for i in range(replicas)]


def test_postgres_is_external_and_the_migration_job_upgrades_it() -> None:
    assert "postgres" not in _by_kind("StatefulSet") and "postgres" not in _by_kind("Deployment")
    job = _by_kind("Job")["llmproxy-migrate"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    build_parser().parse_args(container["args"])
    assert container["args"] == ["db", "upgrade"]
    assert _environment(container)["DATABASE_URL"].startswith("postgresql://")
    images = {_container(d)["image"] for d in _by_kind("Deployment").values()}
    assert images == {container["image"]}, "every LLMProxy process runs the one image"


def test_the_gateway_replicas_are_its_queue_replicas_or_scale_horizontally() -> None:
    hpa = _by_kind("HorizontalPodAutoscaler")["gateway"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "gateway")
    low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
    deployment = _by_kind("Deployment")["gateway"]
    env = _environment(_container(deployment))
    if "LLMPROXY_SCHEDULER_ADDR" in env:
        # each replica owns capacity_slots / LLMPROXY_QUEUE_REPLICAS of every limited
        # model's slots: exactly that many replicas may run, never one more (no surge)
        replicas = int(env["LLMPROXY_QUEUE_REPLICAS"])
        assert low == high == deployment["spec"]["replicas"] == replicas >= 2
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    else:
        assert 2 <= low < high
    # the HPA scales on CPU utilisation, which needs a CPU request on the container
    assert "cpu" in _container(deployment)["resources"]["requests"]


def test_every_service_exposes_metrics_and_may_export_traces() -> None:
    common = _by_kind("ConfigMap")["llmproxy-common"]["data"]
    port = int(common["LLMPROXY_METRICS_PORT"])
    # optional: empty (the default) exports nothing, and the services accept it
    assert common["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
    for name in SERVICE_MODULES:
        deployment = _by_kind("Deployment")[name]
        assert {"name": "metrics", "containerPort": port} in _container(deployment)["ports"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port), name
        service_ports = _by_kind("Service")[name]["spec"]["ports"]
        assert {"name": "metrics", "port": port, "targetPort": "metrics"} in service_ports
