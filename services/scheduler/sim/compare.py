"""Run several policies on one workload and tabulate the results."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import ClusterConfig, ConfigError, Job, make_policy
from .configs import paper_config
from .driver import SimulationResult, simulate
from .metrics import Summary, summarize, write_jobs_csv
from .progress import ProgressBar
from .workload import DEFAULT_DATA_DIR

__all__ = [
    "BASELINES",
    "Comparison",
    "PolicySpec",
    "default_specs",
    "format_table",
    "run_comparison",
]

#: the baselines of the published comparison (SRSF is the Tiresias-like policy)
BASELINES = ("fifo", "srsf", "afs", "themis")


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A policy to run, under a table label."""

    label: str
    policy: str
    params: dict[str, Any] = field(default_factory=dict)


def default_specs(
    trace: str | None,
    policies: Sequence[str] = BASELINES,
    presets: Sequence[str] = ("pred", "jct"),
    data_dir: Path = DEFAULT_DATA_DIR,
) -> list[PolicySpec]:
    """Baselines plus WFQ-PCS at the published presets of ``trace`` (skipped, with no row,
    where the authors published none)."""
    specs = [PolicySpec(name, name) for name in policies]
    for preset in presets:
        if trace is None:
            continue
        try:
            config = paper_config(trace, preset, data_dir)
        except ConfigError:
            continue
        specs.append(PolicySpec(f"wfq-{preset}", "wfq", {"config": config}))
    return specs


@dataclass(frozen=True, slots=True)
class Comparison:
    summaries: list[Summary]
    results: list[SimulationResult]


def run_comparison(
    jobs: Sequence[Job],
    cluster: ClusterConfig,
    specs: Sequence[PolicySpec],
    *,
    predict: bool = True,
    prediction_share: float = 1.0,
    progress: bool = False,
    jobs_csv_dir: Path | None = None,
    on_result: Callable[[Summary], None] | None = None,
) -> Comparison:
    summaries, results = [], []
    for spec in specs:
        policy = make_policy(spec.policy, **dict(spec.params))
        bar = ProgressBar(spec.label) if progress else None
        result = simulate(
            jobs,
            cluster,
            policy,
            predict=predict,
            prediction_share=prediction_share,
            progress=bar,
        )
        summary = summarize(result, spec.label)
        if jobs_csv_dir is not None:
            write_jobs_csv(result, jobs_csv_dir / f"{spec.label}.csv")
        summaries.append(summary)
        results.append(result)
        if on_result is not None:
            on_result(summary)
    return Comparison(summaries, results)


def _fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def format_table(summaries: Sequence[Summary], reference: str = "afs") -> str:
    """Text table; mean JCT normalised to the best policy and to ``reference`` (if present)."""
    best = min(s.jct_mean for s in summaries)
    ref = next((s.jct_mean for s in summaries if s.policy == reference), math.nan)
    header = (
        "policy",
        "jobs",
        "JCT mean s",
        "/best",
        f"/{reference}",
        "JCT p50 s",
        "JCT p99 s",
        "err mean %",
        "err p99 %",
        "rho mean %",
        "rho>0 %",
        "wall s",
    )
    rows = [header]
    for s in summaries:
        rows.append(
            (
                s.policy,
                str(s.jobs),
                _fmt(s.jct_mean, 0),
                _fmt(s.jct_mean / best),
                _fmt(s.jct_mean / ref),
                _fmt(s.jct_p50, 0),
                _fmt(s.jct_p99, 0),
                _fmt(s.error_mean, 3),
                _fmt(s.error_p99, 2),
                _fmt(s.unfairness_mean, 2),
                _fmt(100 * s.unfair_share, 1),
                _fmt(s.wall_seconds, 1),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for k, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
