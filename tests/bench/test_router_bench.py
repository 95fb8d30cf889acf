"""The router benchmark runs end to end at smoke size and writes where it is told (never over
the committed full result)."""

from pathlib import Path

import pytest

from llmproxy.optimizer.router.dataset import DEFAULT_DATA_DIR
from tests.bench.runner import run_bench

ROOT = Path(__file__).resolve().parents[2]


def test_router_smoke_reports_held_out_domains_only(tmp_path: Path) -> None:
    if not DEFAULT_DATA_DIR.is_dir():
        pytest.skip(f"{DEFAULT_DATA_DIR} is absent (shared routing data not checked out)")
    committed = ROOT / "bench" / "results" / "router.json"
    before = committed.stat().st_mtime_ns if committed.exists() else None
    out = tmp_path / "router.json"
    result, stdout = run_bench("router/run.py", "--smoke", out=out, timeout=300)
    after = committed.stat().st_mtime_ns if committed.exists() else None
    assert after == before, "a smoke run rewrote the committed result"
    folds = result["split"]["folds"]
    held_out = [d for fold in folds for d in fold["held_out_domains"]]
    assert len(held_out) == len(set(held_out)) == result["data"]["domains"]
    assert result["data"]["excluded_contaminated"] >= 1
    curve = result["rankings"]["cheap_confidence"]["curve"]
    assert curve[0]["router_accuracy"] == pytest.approx(result["accuracy"]["cheap"], abs=1e-3)
    assert curve[-1]["router_accuracy"] == pytest.approx(result["accuracy"]["strong"], abs=1e-3)
    assert "strong share" in stdout


def test_router_latency_smoke_reports_the_embedding_path_and_the_deployed_router(
    tmp_path: Path,
) -> None:
    if not DEFAULT_DATA_DIR.is_dir():
        pytest.skip(f"{DEFAULT_DATA_DIR} is absent (shared routing data not checked out)")
    out = tmp_path / "router_latency.json"
    result, stdout = run_bench("router/run.py", "--latency-only", "--smoke", out=out, timeout=300)
    path = result["decision_latency"]
    assert path["router_uses_embedding"] and path["router"].startswith("embedding path")
    deployed = result["deployed_router"]
    timing = deployed["decision_latency"]
    assert timing["router_uses_embedding"] == (deployed["chosen_setting"]["embedding_weight"] > 0)
    for part in ("embedding", "classifier", "decision_as_gateway"):
        assert timing[part]["samples"] == path[part]["samples"] > 0
    assert len(timing["load_average_1_5_15"]) == 3
    assert "deployed router" in stdout
