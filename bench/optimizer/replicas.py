"""Does a search finish sooner with two optimizer replicas sharing the work queue than with
one? Starts a private nats-server and 1, then 2, ``llmproxy serve optimizer`` processes
(one simulation process each) on a fresh SQLite database, runs the same search through
StartSearch and times it until GetSearch says completed.

    .venv/bin/python bench/optimizer/replicas.py [--jobs 600 --population 8 --generations 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from llmproxy.embedded.stack import nats_server_binary
from llmproxy.platform.db.migrate import upgrade
from llmproxy.platform.processes import free_port
from llmproxy.v1 import optimizer_pb2, optimizer_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
LLMPROXY = str(Path(sys.executable).parent / "llmproxy")


def start_nats(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return process, f"nats://127.0.0.1:{port}"


def start_replica(
    name: str, nats_url: str, db_url: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPROXY_")}
    env.update(
        NATS_URL=nats_url,
        DATABASE_URL=db_url,
        LLMPROXY_GRPC_PORT=str(port),
        LLMPROXY_INSTANCE_ID=name,
        LLMPROXY_EVAL_PROCESSES="1",
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            [LLMPROXY, "serve", "optimizer"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, f"127.0.0.1:{port}"


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def run(replicas: int, args: argparse.Namespace) -> dict[str, float | int | str]:
    import asyncio

    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        db_url = f"sqlite:///{base}/bench.db"
        asyncio.run(upgrade(db_url))
        nats, nats_url = start_nats(base / "js")
        processes = []
        try:
            addresses = []
            for index in range(replicas):
                process, address = start_replica(
                    f"r{index}", nats_url, db_url, base / f"r{index}.log"
                )
                processes.append(process)
                addresses.append(address)
            channel = grpc.insecure_channel(addresses[0])
            stub = optimizer_pb2_grpc.OptimizerStub(channel)
            deadline = time.monotonic() + 60
            while True:  # wait for every replica to serve
                try:
                    for address in addresses:
                        with grpc.insecure_channel(address) as c:
                            optimizer_pb2_grpc.OptimizerStub(c).ListSearches(
                                optimizer_pb2.ListSearchesRequest(), timeout=2
                            )
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            started = time.perf_counter()
            search = stub.StartSearch(
                optimizer_pb2.StartSearchRequest(
                    workload=optimizer_pb2.WorkloadSource(
                        trace_path=args.trace, jobs_limit=args.jobs, cluster_gpus=64
                    ),
                    population=args.population,
                    generations=args.generations,
                    seed=args.seed,
                )
            )
            while search.state != optimizer_pb2.SEARCH_STATE_COMPLETED:
                if search.state == optimizer_pb2.SEARCH_STATE_FAILED:
                    raise RuntimeError(search.error)
                time.sleep(0.2)
                search = stub.GetSearch(optimizer_pb2.SearchRef(search_id=search.search_id))
            wall = time.perf_counter() - started
            channel.close()
        finally:
            for process in processes:
                stop(process)
            nats.terminate()
            nats.wait(10)
    return {"replicas": replicas, "evaluated": search.evaluated, "wall_seconds": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", default="0e4a51")
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--out", default=str(ROOT / "bench" / "results" / "optimizer_replicas.json")
    )
    args = parser.parse_args(argv)
    rows = [run(n, args) for n in (1, 2)]
    payload = {
        "command": "bench/optimizer/replicas.py " + " ".join(argv or sys.argv[1:]),
        "machine": "2 cores, 24 GiB, shared with other work",
        "load_average_at_end": os.getloadavg(),
        "workload": f"trace {args.trace}, first {args.jobs} jobs, 64 GPUs",
        "budget": f"{args.population} x {args.generations}",
        "runs": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=1))
    print("| replicas | configs evaluated | wall s |\n|---|---|---|")
    for row in rows:
        print(f"| {row['replicas']} | {row['evaluated']} | {row['wall_seconds']} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
