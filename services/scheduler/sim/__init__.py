"""Discrete-event simulator around the PCS scheduling core (simpy driver, workloads,
metrics, comparison tables, plots, CLI)."""

from .compare import BASELINES, Comparison, PolicySpec, default_specs, format_table, run_comparison
from .configs import PRESETS, load_config_file, paper_config
from .driver import SimulationResult, simulate
from .metrics import Summary, fair_jct, prediction_error, summarize, unfairness, write_jobs_csv
from .workload import (
    DEFAULT_DATA_DIR,
    EmpiricalCdf,
    inject_size_error,
    read_trace,
    synthetic_jobs,
    trace_path,
)

__all__ = [
    "BASELINES",
    "DEFAULT_DATA_DIR",
    "PRESETS",
    "Comparison",
    "EmpiricalCdf",
    "PolicySpec",
    "SimulationResult",
    "Summary",
    "default_specs",
    "fair_jct",
    "format_table",
    "inject_size_error",
    "load_config_file",
    "paper_config",
    "prediction_error",
    "read_trace",
    "run_comparison",
    "simulate",
    "summarize",
    "synthetic_jobs",
    "trace_path",
    "unfairness",
    "write_jobs_csv",
]
