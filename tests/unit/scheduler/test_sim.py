"""Simulator adapters: workloads, metrics, comparison table, CLI."""

import argparse
import csv
import json

import numpy as np
import pytest

from llmproxy.scheduler.core import ClusterConfig, Job, make_policy
from llmproxy.scheduler.sim import (
    EmpiricalCdf,
    PolicySpec,
    format_table,
    inject_size_error,
    paper_config,
    read_trace,
    run_comparison,
    simulate,
    summarize,
    trace_path,
    write_jobs_csv,
)
from llmproxy.scheduler.sim.cli import add_sim_commands

from .factories import DATA_DIR, jobs_from, random_jobs


def needs(path):
    if not path.exists():
        pytest.skip(f"{path} is absent (shared PCS data not checked out)")
    return path


def test_trace_reader_takes_size_demand_and_cumulative_arrivals():
    jobs = read_trace(needs(trace_path("0e4a51", DATA_DIR)), limit=5)
    assert [j.job_id for j in jobs] == [0, 1, 2, 3, 4]
    assert jobs[0] == Job(0, 0.0, 16482.0, 1.0, features={"model_name": "TransformerModel256"})
    assert jobs[1].arrival == 6.0


def test_cdf_sampling_is_seeded_and_reads_minutes_as_seconds(tmp_path):
    path = tmp_path / "cdf.csv"
    path.write_text("#minutes,cdf\n1,0\n2,0.5\n3,1\n")
    cdf = EmpiricalCdf.read(path)
    a = cdf.sample(1000, np.random.default_rng(5))
    assert np.array_equal(a, cdf.sample(1000, np.random.default_rng(5)))
    assert 60 <= a.min() and a.max() <= 180
    assert abs(np.median(a) - 120) < 10


def test_shipped_workload_cdfs_parse():
    base = needs(DATA_DIR / "workloads")
    for path in sorted(base.glob("cdf-*.csv")):
        assert len(EmpiricalCdf.read(path).values) >= 2, path


def test_size_error_stays_within_the_band():
    rng = np.random.default_rng(0)
    jobs = inject_size_error(random_jobs(rng, 500), 30.0, rng)
    ratio = np.array([j.believed_size / j.size for j in jobs])
    assert ratio.min() >= 0.7 - 1e-12 and ratio.max() <= 1.3 + 1e-12
    assert ratio.std() > 0.1


def test_metrics_on_a_hand_checked_case():
    # two 10 GPU-s jobs of demand 1 on 1 GPU at t=0 under FIFO: JCTs 10 and 20
    result = simulate(
        jobs_from([(0, 10, 1), (0, 10, 1)]), ClusterConfig(gpus=1), make_policy("fifo")
    )
    summary = summarize(result)
    assert result.jct.tolist() == [10.0, 20.0]
    assert summary.jct_mean == 15.0
    assert summary.error_mean == 0.0
    # job 1 saw 2 active jobs at its submission, its own... fair JCT = 10 / min(1/c, 1)
    assert summary.unfairness_mean >= 0


def test_jobs_csv_has_one_row_per_job(tmp_path):
    result = simulate(
        random_jobs(np.random.default_rng(4), 20), ClusterConfig(gpus=4), make_policy("afs")
    )
    write_jobs_csv(result, tmp_path / "jobs.csv")
    rows = list(csv.DictReader((tmp_path / "jobs.csv").open()))
    assert len(rows) == 20 and float(rows[0]["jct"]) > 0


def test_comparison_table_normalises_to_the_best_and_to_afs():
    jobs = random_jobs(np.random.default_rng(6), 80)
    specs = [PolicySpec(n, n) for n in ("fifo", "srsf", "afs")]
    comparison = run_comparison(jobs, ClusterConfig(gpus=8), specs)
    table = format_table(comparison.summaries)
    assert "/afs" in table and "1.00" in table
    assert [s.policy for s in comparison.summaries] == ["fifo", "srsf", "afs"]


def test_published_presets_load_for_the_paper_traces():
    needs(DATA_DIR / "paper_configs.json")
    assert paper_config("0e4a51", "pred", DATA_DIR).num_classes == 3


def cli(argv):
    parser = argparse.ArgumentParser()
    add_sim_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_run_on_a_trace_with_a_config_file(tmp_path, capsys):
    needs(trace_path("2869ce", DATA_DIR))
    config = tmp_path / "wfq.json"
    config.write_text(json.dumps({"class_thresholds": [2000, "inf"], "class_rates": [0.9, 0.1]}))
    code = cli(
        [
            "sim",
            "run",
            "--trace",
            "2869ce",
            "--limit",
            "150",
            "--gpus",
            "64",
            "--policy",
            "wfq",
            "--config",
            str(config),
            "--no-progress",
            "--jobs-csv",
            str(tmp_path / "jobs.csv"),
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 0
    assert "wfq" in capsys.readouterr().out
    assert json.loads((tmp_path / "s.json").read_text())["summary"]["jobs"] == 150


def test_cli_compare_on_a_synthetic_workload(tmp_path, capsys):
    needs(DATA_DIR / "workloads")
    code = cli(
        [
            "sim",
            "compare",
            "--workload",
            "workload_0e4a51",
            "--jobs",
            "120",
            "--gpus",
            "8",
            "--seed",
            "3",
            "--no-progress",
            "--json",
            str(tmp_path / "c.json"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for name in ("fifo", "srsf", "afs", "themis"):
        assert name in out
    assert len(json.loads((tmp_path / "c.json").read_text())["summaries"]) == 4


def test_cli_reports_a_missing_trace_as_an_error(capsys):
    assert cli(["sim", "run", "--trace", "nope", "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
