"""The optimizer benchmark runs end to end at smoke size and writes its JSON where it is told
(never over the committed full results)."""

from pathlib import Path

import pytest

from llmproxy.scheduler.sim import DEFAULT_DATA_DIR, trace_path
from tests.bench.runner import run_bench

ROOT = Path(__file__).resolve().parents[2]


def test_optimizer_smoke_compares_nsga2_random_and_published(tmp_path: Path) -> None:
    if not trace_path("0e4a51", DEFAULT_DATA_DIR).exists():
        pytest.skip("shared PCS traces are absent")
    committed = ROOT / "bench" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in committed.glob("optimizer*")}
    out = tmp_path / "optimizer.json"
    written, stdout = run_bench(
        "optimizer/run.py",
        "--smoke",
        "--plots",
        str(tmp_path),
        out=out,
        timeout=180,
    )
    after = {p.name: p.stat().st_mtime_ns for p in committed.glob("optimizer*")}
    assert after == before, "a smoke run rewrote the committed results"
    result = written["results"][0]
    assert set(result["methods"]) == {"nsga2", "random"}
    for method in result["methods"].values():
        assert method["evaluations"] == 12 and method["front"]
        assert 0 < method["hypervolume"] <= 1
    assert set(result["paper"]) == {"pred", "bal", "jct"}
    assert (tmp_path / "optimizer_front_0e4a51_smoke.png").stat().st_size > 1000
    assert "| nsga2 |" in stdout
