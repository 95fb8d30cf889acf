"""The Grafana dashboard (deploy/grafana/llmproxy.json) only plots series the services export.

Every metric name in every panel's query must be a metric some service module registers
(importing them registers their metrics in the default Prometheus registry). A renamed
metric fails here, not as an empty panel in production.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "llmproxy.json"
#: the modules that define the product's metrics
METRIC_MODULES = (
    "llmproxy.platform.grpc_boundary",
    "llmproxy.platform.tracing",
    "llmproxy.gateway.ask",
    "llmproxy.scheduler.metrics",
    "llmproxy.whatsapp.webhook",
    "llmproxy.whatsapp.worker",
)
_NAME = re.compile(r"\bllmproxy_[a-z0-9_]+")
_SUFFIXES = ("_bucket", "_count", "_sum")


def exported_families() -> set[str]:
    """Names of the metric families in the default registry, as /metrics shows them."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    text = generate_latest(REGISTRY).decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def family(series: str) -> str:
    """``llmproxy_x_seconds_bucket`` -> ``llmproxy_x_seconds``; counters keep ``_total``."""
    for suffix in _SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series.removesuffix("_total")


def panel_queries(dashboard: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                found.setdefault(inner["title"], []).append(target["expr"])
    return found


def test_every_panel_plots_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    families = {f.removesuffix("_total") for f in exported_families()}
    queries = panel_queries(dashboard)
    assert len(queries) >= 12
    missing = {
        title: sorted({family(n) for e in exprs for n in _NAME.findall(e)} - families)
        for title, exprs in queries.items()
    }
    assert not {t: m for t, m in missing.items() if m}, missing
    every = {family(n) for exprs in queries.values() for e in exprs for n in _NAME.findall(e)}
    # the list: request rate, latency, cost, cache hit ratio, tokens saved, queue
    # length, ETA error
    for needed in (
        "llmproxy_ask_requests",
        "llmproxy_ask_seconds",
        "llmproxy_cost_nanousd",
        "llmproxy_cache_lookups",
        "llmproxy_tokens_saved",
        "llmproxy_scheduler_jobs",
        "llmproxy_scheduler_eta_error_percent",
    ):
        assert needed in every, needed
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
