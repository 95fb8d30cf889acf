"""The PCS benchmarks run end to end at smoke size and write their JSON where they are told
(never over the committed full results)."""

from pathlib import Path

import pytest

from llmproxy.scheduler.sim import DEFAULT_DATA_DIR, trace_path
from tests.bench.runner import run_bench

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, out: Path) -> dict:
    trace = trace_path("0e4a51", DEFAULT_DATA_DIR)
    if not trace.exists():
        pytest.skip(f"{trace} is absent (shared PCS data not checked out)")
    committed = ROOT / "bench" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in committed.glob("pcs_*.json")}
    result, _ = run_bench(f"pcs/{script}", *args, out=out, timeout=120)
    after = {p.name: p.stat().st_mtime_ns for p in committed.glob("pcs_*.json")}
    assert after == before, "a smoke run rewrote the committed results"
    return result


def test_speed_smoke_times_every_run(tmp_path):
    result = _run("speed.py", "--smoke", "--timeout", "60", out=tmp_path / "speed.json")
    runs = result["runs"]
    assert {r["trace"] for r in runs} == {"2869ce", "0e4a51"}
    timed = [r for r in runs if r["status"] == "ok"]
    assert timed and all(r["events_per_s"] > 0 for r in timed)


def test_compare_smoke_tabulates_baselines_and_wfq(tmp_path):
    result = _run(
        "compare.py",
        "--smoke",
        "--traces",
        "0e4a51,2869ce",
        "--policies",
        "fifo,srsf,afs",
        "--timeout",
        "60",
        out=tmp_path / "compare.json",
    )
    runs = result["traces"]["0e4a51"]["runs"]
    assert {r["policy"] for r in runs} == {"fifo", "srsf", "afs", "wfq-pred", "wfq-jct"}
    fifo = next(r for r in runs if r["policy"] == "fifo")
    assert fifo["error_mean"] == pytest.approx(0.0, abs=1e-6)


def test_context_bench_smoke_reports_recall_tokens_and_build_latency(tmp_path):
    """bench/context/run.py end to end at its smallest: every strategy's recall and token
    ratio, and the build latency and CPU time per strategy (never over the committed JSON)."""
    committed = ROOT / "bench" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in committed.glob("context*.json")}
    out = tmp_path / "context.json"
    result, _ = run_bench(
        "context/run.py",
        "--smoke",
        "--per-cell",
        "1",
        "--builds",
        "20",
        out=out,
        timeout=300,
    )
    after = {p.name: p.stat().st_mtime_ns for p in committed.glob("context*.json")}
    assert after == before, "a smoke run rewrote the committed results"
    strategies = result["strategies"]
    assert strategies["full"]["recall"] == 1.0 and strategies["full"]["token_ratio_20plus"] == 1.0
    assert 0 < strategies["relevant k=4"]["token_ratio_20plus"] < 1
    latency = result["latency_build_ms"]
    for label in ("full", "relevant k=4", "relevant k=4, no history cache", "summary"):
        assert latency[label]["p99_ms"] >= latency[label]["p50_ms"] > 0
        assert latency[label]["cpu_ms_mean"] > 0
    assert len(latency["load_average_before"]) == 3
