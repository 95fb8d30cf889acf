"""Published comparison: baselines vs WFQ-PCS at the authors' published configurations.

Run (from the repository root):

    .venv/bin/python bench/pcs/compare.py            # the six traces, 64 GPUs
    .venv/bin/python bench/pcs/compare.py --smoke    # first 300 jobs of each, for CI

Writes bench/results/pcs_compare[_smoke].json (rewritten after every run, so a cut-off run
keeps what it measured) and prints one table per trace plus the published numbers.
Predictions are made for min(5000 / jobs, 1) of the jobs by default, as the PCS artifact does
(``--prediction-share 1`` predicts every job).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _common import RunTimeout, load_average, machine, result_path, time_limit, write_result

from llmproxy.scheduler.core import ClusterConfig, make_policy
from llmproxy.scheduler.sim import (
    BASELINES,
    DEFAULT_DATA_DIR,
    default_specs,
    format_table,
    read_trace,
    simulate,
    summarize,
    trace_path,
)

TRACES = ("0e4a51", "b436b2", "6214e9", "6c71a0", "2869ce", "ee9e8c")

#: github.com/abdullahfsm/PCS data/fig7/*.csv (workloads 1-6; the files do not name the traces)
PUBLISHED = {
    "policies": ["AFS", "Tiresias", "Themis", "FIFO", "PCS-JCT", "PCS-bal", "PCS-pred"],
    "avg_jct_norm": [
        [1.0, 1.064, 1.324, 9.301, 1.568, 2.372, 2.614],
        [1.0, 1.316, 1.552, 59.979, 2.246, 3.33, 5.362],
        [1.0, 1.102, 1.341, 92.017, 1.915, 2.701, 3.473],
        [1.0, 1.073, 1.498, 31.521, 1.467, 2.021, 4.846],
        [1.0, 1.428, 1.652, 4.857, 1.145, 1.459, 2.562],
        [1.0, 1.557, 1.898, 14.553, 2.017, 2.735, 5.965],
    ],
    "avg_error_pct": [
        [25.632, 26.619, 47.967, 0.0, 5.568, 1.371, 0.8],
        [83.816, 86.569, 43.32, 0.0, 1.272, 0.375, 0.172],
        [77.429, 85.343, 38.49, 0.0, 10.536, 2.398, 0.437],
        [16.963, 18.358, 40.007, 0.0, 4.935, 2.006, 1.446],
        [9.027, 11.166, 33.82, 0.0, 4.045, 1.407, 0.4],
        [29.431, 69.837, 54.048, 0.0, 8.504, 4.593, 0.975],
    ],
    "p99_error_pct": [
        [239.758, 313.503, 212.425, 0.0, 115.522, 14.914, 7.219],
        [770.714, 791.598, 258.832, 0.0, 26.042, 9.634, 5.601],
        [924.858, 1030.017, 273.523, 0.0, 250.193, 58.091, 11.922],
        [194.101, 216.328, 126.188, 0.0, 92.058, 69.316, 49.363],
        [113.631, 241.127, 122.788, 0.0, 48.08, 22.211, 4.709],
        [538.801, 1535.729, 510.721, 0.0, 207.113, 54.937, 5.185],
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="first 300 jobs of each trace")
    parser.add_argument("--traces", default=",".join(TRACES))
    parser.add_argument("--policies", default=",".join(BASELINES))
    parser.add_argument("--presets", default="pred,jct")
    parser.add_argument("--gpus", type=float, default=64)
    parser.add_argument(
        "--prediction-share",
        default="artifact",
        help="'artifact' = min(5000/jobs, 1), or a number in (0, 1]",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give up on one policy run after this many seconds",
    )
    parser.add_argument(
        "--timeout-clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="what --timeout counts: CPU seconds of this process (default) or wall seconds",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="result file (default: bench/results/pcs_compare[_smoke].json)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the result file's other runs; replace only the (trace, policy) runs made now",
    )
    args = parser.parse_args()

    limit = 300 if args.smoke else None
    out_path = result_path("pcs_compare_smoke" if args.smoke else "pcs_compare", args.out)
    command = " ".join(["bench/pcs/compare.py", *sys.argv[1:]])
    payload: dict = {
        "command": command,
        "machine": machine(),
        "gpus": args.gpus,
        "published": PUBLISHED,
        "traces": {},
    }
    if args.merge and out_path.exists():
        earlier = json.loads(out_path.read_text())
        payload["traces"] = earlier.get("traces", {})
        payload["earlier_commands"] = [
            earlier.get("command"),
            *earlier.get("earlier_commands", []),
        ]
    cluster = ClusterConfig(gpus=args.gpus)
    for trace in [t for t in args.traces.split(",") if t]:
        path = trace_path(trace, DEFAULT_DATA_DIR)
        if not path.exists():
            print(f"skip {trace}: {path} is absent")
            continue
        jobs = read_trace(path, limit)
        share = (
            min(5000 / len(jobs), 1.0)
            if args.prediction_share == "artifact"
            else float(args.prediction_share)
        )
        specs = default_specs(trace, args.policies.split(","), args.presets.split(","))
        entry = payload["traces"].get(trace) or {}
        if entry.get("prediction_share") not in (None, share):
            entry = {}  # measured at another prediction share: not mergeable
        labels = {spec.label for spec in specs}
        entry = {
            "jobs": len(jobs),
            "prediction_share": share,
            "runs": [r for r in entry.get("runs", []) if r["policy"] not in labels],
            "timeouts": [t for t in entry.get("timeouts", []) if t["policy"] not in labels],
        }
        payload["traces"][trace] = entry
        summaries = []
        for spec in specs:
            started = time.perf_counter()
            cpu_started = time.process_time()
            load_before = load_average()
            try:
                with time_limit(args.timeout, args.timeout_clock):
                    result = simulate(
                        jobs,
                        cluster,
                        make_policy(spec.policy, **spec.params),
                        prediction_share=share,
                    )
            except RunTimeout:
                entry["timeouts"].append(
                    {
                        "policy": spec.label,
                        "after_s": args.timeout,
                        "clock": args.timeout_clock,
                        "command": command,
                    }
                )
                print(
                    f"{trace} {spec.label}: gave up after {args.timeout:.0f} {args.timeout_clock} s"
                )
                write_result(out_path, payload)
                continue
            summary = summarize(result, spec.label)
            summaries.append(summary)
            entry["runs"].append(
                {
                    **summary.as_dict(),
                    "cpu_s": time.process_time() - cpu_started,
                    "load_before": load_before,
                    "load_after": load_average(),
                    "command": command,
                }
            )
            print(f"{trace} {spec.label}: {time.perf_counter() - started:.1f} s", flush=True)
            write_result(out_path, payload)
        if summaries:
            print(
                f"\ntrace {trace}: {len(jobs)} jobs, {args.gpus:g} GPUs, "
                f"predictions for {100 * share:.1f}% of jobs"
            )
            print(format_table(summaries))
            print()
    out = write_result(out_path, payload)
    print("published (fig7, normalised to AFS; rows = the artifact's workloads 1-6):")
    print("  " + "  ".join(f"{p:>9}" for p in PUBLISHED["policies"]))
    for label, key in (("JCT/AFS", "avg_jct_norm"), ("err mean", "avg_error_pct")):
        for row in PUBLISHED[key]:
            print(f"{label:>8} " + "  ".join(f"{v:9.3f}" for v in row))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
