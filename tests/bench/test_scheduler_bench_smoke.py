"""The live scheduler benchmark runs end to end at smoke size and writes its JSON where it is
told (never over the committed results)."""

from pathlib import Path

import pytest

from llmproxy.scheduler.sim import DEFAULT_DATA_DIR, trace_path
from tests.bench.runner import run_bench

ROOT = Path(__file__).resolve().parents[2]


def test_live_eta_smoke_measures_all_three_runs_and_the_submit_latency(tmp_path: Path) -> None:
    if not trace_path("0e4a51", DEFAULT_DATA_DIR).exists():
        pytest.skip("shared PCS data not checked out")
    out = tmp_path / "live.json"
    result, stdout = run_bench("scheduler/live_eta.py", "--smoke", out=out, timeout=180)
    errors = result["eta_error_percent"]
    # with exact sizes the offline runs are exact; the live one is measured, whatever it is
    assert errors["offline_simulator"]["all"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert errors["live_core_offline"]["all"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert errors["live_service"]["all"]["jobs"] == result["jobs"] == 25
    assert result["submit_latency"][0]["p99_ms"] > 0
    assert "live service" in stdout


def test_llm_queue_smoke_reports_eta_error_and_each_tenants_share(tmp_path: Path) -> None:
    out = tmp_path / "llm.json"
    result, stdout = run_bench("scheduler/llm_queue.py", "--smoke", out=out, timeout=180)
    assert result["eta_error"]["requests"] == 36  # every request answered
    assert result["eta_error"]["p95_percent"] >= result["eta_error"]["p50_percent"] >= 0
    tenants = result["fair_share"]["tenants"]
    assert set(tenants) == {"acme", "globex", "initech"}
    assert sum(t["share"] for t in tenants.values()) == pytest.approx(1.0)
    # the heavier tenant got more service than each of the others while all waited
    assert tenants["initech"]["share"] > max(tenants["acme"]["share"], tenants["globex"]["share"])
    assert "ETA error" in stdout
