"""Simulator speed: wall time and events/s of one full simulation with a prediction for
every job, per trace size.

Run (from the repository root):

    .venv/bin/python bench/pcs/speed.py              # 1k, 2.5k, 9k, 15k, 19k, 51k-job traces
    .venv/bin/python bench/pcs/speed.py --smoke      # 1k and 2.5k traces, first 500 jobs

Writes bench/results/pcs_speed[_smoke].json and prints a table. One process, one core.
Every run records its wall time and the CPU time of the process (on a machine shared with
other work the wall time includes waiting for a core; the CPU time does not), and the load
average before and after it. ``--timeout`` is a budget of CPU seconds per run by default
(``--timeout-clock wall`` for wall seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _common import RunTimeout, load_average, machine, result_path, time_limit, write_result

from llmproxy.scheduler.core import ClusterConfig, ConfigError, make_policy
from llmproxy.scheduler.sim import (
    DEFAULT_DATA_DIR,
    paper_config,
    read_trace,
    simulate,
    trace_path,
)

#: trace per size class: 1k, 2.5k, 9k, 15k, 19k, 51k jobs
TRACES = ("2869ce", "0e4a51", "b436b2", "6c71a0", "11cb48", "6214e9")


def policy_for(label: str, trace: str):
    if label.startswith("wfq-"):
        preset = label.removeprefix("wfq-")
        try:
            return make_policy("wfq", config=paper_config(trace, preset))
        except ConfigError:
            return None
    return make_policy(label)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--traces", default=",".join(TRACES))
    parser.add_argument("--policies", default="wfq-jct,wfq-pred,afs,srsf")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="give up on one run after this many seconds (default 300)",
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
        help="result file (default: bench/results/pcs_speed[_smoke].json)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the result file's other runs; replace only the (trace, policy) runs made now",
    )
    args = parser.parse_args()
    traces = TRACES[:2] if args.smoke else tuple(t for t in args.traces.split(",") if t)
    limit = 500 if args.smoke else None
    out_path = result_path("pcs_speed_smoke" if args.smoke else "pcs_speed", args.out)
    rows: list[dict] = []
    command = " ".join(["bench/pcs/speed.py", *sys.argv[1:]])
    payload = {
        "command": command,
        "machine": machine(),
        "gpus": 64,
        "timeout_s": args.timeout,
        "timeout_clock": args.timeout_clock,
        "runs": rows,
    }
    if args.merge and out_path.exists():
        earlier = json.loads(out_path.read_text())
        now = {(t, p) for t in traces for p in args.policies.split(",")}
        rows.extend(r for r in earlier.get("runs", []) if (r["trace"], r["policy"]) not in now)
        payload["earlier_commands"] = [
            earlier.get("command"),
            *earlier.get("earlier_commands", []),
        ]
    for trace in traces:
        path = trace_path(trace, DEFAULT_DATA_DIR)
        if not path.exists():
            print(f"skip {trace}: {path} is absent")
            continue
        jobs = read_trace(path, limit)
        for label in args.policies.split(","):
            policy = policy_for(label, trace)
            if policy is None:
                rows.append(
                    {
                        "trace": trace,
                        "jobs": len(jobs),
                        "policy": label,
                        "status": "no published config",
                    }
                )
                continue
            started = time.perf_counter()
            cpu_started = time.process_time()
            load_before = load_average()
            try:
                with time_limit(args.timeout, args.timeout_clock):
                    result = simulate(jobs, ClusterConfig(gpus=64), policy)
                wall = result.wall_seconds
                cpu = time.process_time() - cpu_started
                rows.append(
                    {
                        "trace": trace,
                        "jobs": len(jobs),
                        "policy": label,
                        "status": "ok",
                        "command": command,
                        "wall_s": wall,
                        "cpu_s": cpu,
                        "events": result.events,
                        "events_per_s": result.events / wall,
                        "events_per_cpu_s": result.events / cpu if cpu > 0 else None,
                        "load_before": load_before,
                        "load_after": load_average(),
                    }
                )
            except RunTimeout:
                rows.append(
                    {
                        "trace": trace,
                        "jobs": len(jobs),
                        "policy": label,
                        "status": f"timeout > {args.timeout:.0f} {args.timeout_clock} s",
                        "command": command,
                        "wall_s": time.perf_counter() - started,
                        "cpu_s": time.process_time() - cpu_started,
                        "load_before": load_before,
                        "load_after": load_average(),
                    }
                )
            print(rows[-1], flush=True)
            write_result(out_path, payload)
    print(
        f"\n{'trace':<8} {'jobs':>6} {'policy':<9} {'wall s':>8} {'cpu s':>8} {'events':>8} "
        f"{'events/s':>9} {'load':>5}"
    )
    for r in rows:
        if r["status"] == "ok":
            print(
                f"{r['trace']:<8} {r['jobs']:>6} {r['policy']:<9} {r['wall_s']:>8.2f} "
                f"{r.get('cpu_s', float('nan')):>8.2f} {r['events']:>8} "
                f"{r['events_per_s']:>9.0f} {r.get('load_before') or float('nan'):>5.1f}"
            )
        else:
            print(f"{r['trace']:<8} {r['jobs']:>6} {r['policy']:<9} {r['status']}")
    print(f"wrote {write_result(out_path, payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
