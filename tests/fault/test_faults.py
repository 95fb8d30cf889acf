"""Fault suite: the real stack keeps serving through faults and loses nothing.

Under steady load (4 callers: two through the openai SDK, two through gRPC ``Ask`` starting
conversations; each question new, so each reaches the provider and costs money) the suite,
one fault at a time:

* ``kill -9`` each service and starts it again (same address, same settings);
* restarts NATS (same port, same JetStream data);
* stops the database for 10 s (a proxy it controls drops every connection and refuses new
  ones; the shared PostgreSQL server is never touched).

Meanwhile GPU jobs are submitted to the scheduler (one every 2 s, each retried with its
idempotency key until accepted) and run by a real executor process (``tests/fault/jobs.py``).

Afterwards it checks that every request ended answered or with a clear error (never a hang
or a malformed answer), that every answered request is in the usage ledger exactly once,
that the spend the gateway counted equals the ledger's sum (once settlements still retrying
have landed and reservations of killed gateways are swept), that every accepted job
completed exactly once (none lost, none run twice), and that every service is SERVING
again. It writes what each fault cost (errors, p50/p99 latency, recovery time) to
``bench/results/fault.json`` (``LLMPROXY_FAULT_REPORT`` moves it) and prints a table.

    pytest -m fault tests/fault -s        # about 4 minutes on 2 shared cores
    LLMPROXY_FAULTS=gateway,database LLMPROXY_FAULT_REPORT=/tmp/f.json pytest -m fault ...
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from llmproxy.embedded.stack import SERVICES
from llmproxy.gateway.fake_upstream import ANSWER
from llmproxy.platform.health import check_health
from tests.fault.harness import MODEL, RunningStack, running_stack
from tests.fault.jobs import JobLoad
from tests.fault.load import Phase, SteadyLoad, summarise

pytestmark = [
    pytest.mark.fault,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.nats,
    pytest.mark.timeout(600),
]

REPOSITORY = Path(__file__).resolve().parents[2]
REPORT = Path(os.environ.get("LLMPROXY_FAULT_REPORT", REPOSITORY / "bench/results/fault.json"))
DATABASE_DOWN_S = 10.0
#: how long a killed service stays dead before it is started again
DEAD_S = 1.0
#: after the broken part is back, watch at least this long, and until requests succeed
SETTLE_S = 2.0
RECOVERY_LIMIT_S = 30.0
#: spend must equal the ledger within this long after the load stops: settlements retrying
#: after the database outage land, and a killed gateway's reservations pass their TTL
#: (LLMPROXY_RESERVATION_TTL in the harness) and are swept
SPEND_CATCH_UP_S = 90.0


async def _kill_and_restart(stack: RunningStack, name: str, phase: Phase) -> None:
    process = stack.stack.process(name)
    os.kill(process.pid, signal.SIGKILL)
    await asyncio.to_thread(process.wait, 10)
    await asyncio.sleep(DEAD_S)
    started = time.monotonic()
    await stack.stack.restart_service(name)
    phase.notes.append(f"{name} SERVING again {time.monotonic() - started:.1f}s after restart")


async def _restart_nats(stack: RunningStack, phase: Phase) -> None:
    await stack.nats.restart()
    phase.notes.append("nats-server stopped (SIGTERM) and started on the same port and data")


async def _database_down(stack: RunningStack, phase: Phase) -> None:
    await stack.proxy.pause()
    await asyncio.sleep(DATABASE_DOWN_S)
    await stack.proxy.resume()
    phase.notes.append(f"database unreachable for {DATABASE_DOWN_S:.0f}s (connections dropped)")


def _faults() -> list[tuple[str, Callable[[RunningStack, Phase], Awaitable[None]]]]:
    faults: list[tuple[str, Callable[[RunningStack, Phase], Awaitable[None]]]] = []
    for name in SERVICES:

        async def kill(stack: RunningStack, phase: Phase, name: str = name) -> None:
            await _kill_and_restart(stack, name, phase)

        faults.append((f"kill -9 {name}", kill))
    faults.append(("restart nats", _restart_nats))
    faults.append((f"database down {DATABASE_DOWN_S:.0f}s", _database_down))
    # LLMPROXY_FAULTS="gateway,nats" runs only the faults whose names contain those words
    chosen = [w.strip() for w in os.environ.get("LLMPROXY_FAULTS", "").split(",") if w.strip()]
    return [f for f in faults if not chosen or any(w in f[0] for w in chosen)]


async def _observe_recovery(load: SteadyLoad, phase: Phase) -> None:
    """Wait until requests started after the repair succeed again (bounded)."""
    await asyncio.sleep(SETTLE_S)
    deadline = phase.restored + RECOVERY_LIMIT_S
    while time.monotonic() < deadline:
        recent = [s for s in load.samples if s.started >= time.monotonic() - 1.5]
        if load.answered_since(phase.restored) and all(s.outcome == "answered" for s in recent):
            return
        await asyncio.sleep(0.25)


async def _ledger(stack: RunningStack, answered: set[str]) -> dict[str, Any]:
    """Wait (bounded) for the profiler to catch up, then for the spend counter to equal the
    ledger with nothing left reserved; compare them."""
    deadline = time.monotonic() + 60
    while True:
        rows = await stack.query(
            "select request_id, count(*) as n, sum(cost_nanousd) as cost "
            "from usage_records where tenant_id = 'acme' group by request_id"
        )
        recorded = {r["request_id"]: r for r in rows}
        missing = answered - set(recorded)
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    waited = time.monotonic()
    deadline = waited + SPEND_CATCH_UP_S
    while True:
        (spend,) = await stack.query(
            "select coalesce(sum(c.used), 0) as used, coalesce(sum(c.reserved), 0) as reserved "
            "from limit_counters c join usage_limits l on l.id = c.limit_id "
            "where l.tenant_id = 'acme' and l.metric = 'cost_nanousd'"
        )
        (ledger_sum,) = await stack.query(
            "select coalesce(sum(cost_nanousd), 0) as cost from usage_records "
            "where tenant_id = 'acme'"
        )
        caught_up = int(spend["used"]) == int(ledger_sum["cost"]) and int(spend["reserved"]) == 0
        if caught_up or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    (open_reservations,) = await stack.query("select count(*) as n from limit_reservations")
    rows = await stack.query(
        "select request_id, count(*) as n, sum(cost_nanousd) as cost "
        "from usage_records where tenant_id = 'acme' group by request_id"
    )
    recorded = {r["request_id"]: r for r in rows}
    missing = answered - set(recorded)
    return {
        "answered": len(answered),
        "ledger_rows": sum(r["n"] for r in rows),
        "missing_from_ledger": sorted(missing),
        "recorded_twice": sorted(k for k, r in recorded.items() if r["n"] > 1),
        "ledger_rows_not_answered": len(set(recorded) - answered),
        "ledger_cost_nanousd": sum(int(r["cost"] or 0) for r in rows),
        "spend_used_nanousd": int(spend["used"]),
        "spend_reserved_nanousd": int(spend["reserved"]),
        "open_reservations": int(open_reservations["n"]),
        "spend_caught_up_after_s": round(time.monotonic() - waited, 1),
    }


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _table(phases: list[dict[str, Any]]) -> str:
    lines = [
        f"{'fault':<22} {'req':>5} {'ok':>5} {'errors':<46} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'outage s':>8} {'recovery s':>10}"
    ]
    for p in phases:
        errors = ", ".join(f"{k} {v}" for k, v in p["errors"].items()) or "-"
        lines.append(
            f"{p['fault']:<22} {p['requests']:>5} {p['answered']:>5} {errors:<46} "
            f"{p['p50_ms'] or '-':>8} {p['p99_ms'] or '-':>8} {p['outage_s']:>8} "
            f"{p['recovery_s'] if p['recovery_s'] is not None else 'never':>10}"
        )
    return "\n".join(lines)


async def test_the_stack_serves_through_every_fault_and_loses_nothing(tmp_path: Path) -> None:
    began = time.monotonic()
    async with running_stack(tmp_path) as stack:
        started_in = time.monotonic() - began
        load = SteadyLoad(
            stack.http_url,
            stack.keys["acme"],
            grpc_address=stack.grpc_address,
            model=MODEL,
            expected_answer=ANSWER,
        )
        jobs = JobLoad(
            stack.stack.addresses["scheduler"], tmp_path / "jobs", environ=dict(os.environ)
        )
        jobs.start_executor()
        await jobs.wait_for_executor()
        load.start()
        jobs.start()
        phases: list[Phase] = []
        try:
            baseline = Phase("baseline", time.monotonic())
            await asyncio.sleep(3)
            baseline.restored = baseline.started
            baseline.ended = time.monotonic()
            phases.append(baseline)
            for name, inject in _faults():
                phase = Phase(name, time.monotonic())
                await inject(stack, phase)
                phase.restored = time.monotonic()
                await _observe_recovery(load, phase)
                phase.ended = time.monotonic()
                phases.append(phase)
        finally:
            await load.stop()
            await jobs.stop()
        health = await check_health(stack.stack.addresses)
        job_report = await jobs.check()
        await jobs.close()
        answered = {s.request_id for s in load.samples if s.outcome == "answered"}
        ledger = await _ledger(stack, answered)
        logs = {name: stack.logs(name, 15) for name in ("gateway", "profiler")}
        gateway_log = stack.logs("gateway", 10**6)
    # settlements the gateway gave up on (a killed gateway loses its pending ones silently)
    ledger["settle_failures_logged"] = gateway_log.count("could not settle a reservation")

    summaries = [summarise(p, load.samples) for p in phases]
    for summary, phase in zip(summaries, phases, strict=True):
        during = [s for s in jobs.submissions if phase.started <= s.started < phase.ended]
        summary["jobs_submitted"] = len(during)
        summary["jobs_retried"] = sum(1 for s in during if s.attempts > 1)
        summary["jobs_never_accepted"] = sum(1 for s in during if not s.job_id)
    unclear = [s for s in load.samples if s.outcome == "unclear"]
    report = {
        "what": "fault suite: steady load through both front doors while each fault is injected",
        "command": "pytest -m fault tests/fault -s",
        "machine": f"2 cores, 24 GiB, shared with other work ({platform.machine()})",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "setup": {
            "callers": "4 (2 openai SDK over HTTP, 2 gRPC Ask with a new conversation each)",
            "upstream": "llmproxy.gateway.fake_upstream (answers at once)",
            "database": "PostgreSQL 15 (fresh database) behind a pausable TCP proxy",
            "nats": "nats-server with JetStream (private, restartable)",
            "jobs": "one GPU job (1 slot, 1 s) every 2 s, retried with its idempotency key "
            "until accepted; a process executor (llmproxy executor run --kind process) runs them",
            "reservation_ttl": "40s (swept every 2s)",
            "stack_start_s": round(started_in, 1),
        },
        "requests": len(load.samples),
        "unclear": len(unclear),
        "ledger": ledger,
        "jobs": job_report,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "health_after": health,
        "faults": summaries,
        "total_s": round(time.monotonic() - began, 1),
    }
    await asyncio.to_thread(_write, REPORT, json.dumps(report, indent=2) + "\n")
    print(
        f"\n{_table(summaries)}\nledger: {json.dumps(ledger)[:600]}\n"
        f"jobs: {json.dumps(job_report)[:600]}\nreport: {REPORT}"
    )

    assert not unclear, f"requests without a clear outcome: {unclear[:5]}"
    assert all(p["recovery_s"] is not None for p in summaries), _table(summaries)
    assert health == {name: "SERVING" for name in SERVICES}
    assert not ledger["missing_from_ledger"], f"answered but never billed: {ledger}\n{logs}"
    assert not ledger["recorded_twice"], f"billed twice: {ledger}"
    assert ledger["spend_used_nanousd"] == ledger["ledger_cost_nanousd"], ledger
    assert ledger["spend_reserved_nanousd"] == 0, ledger
    assert job_report["accepted"] > 0, job_report
    assert not job_report["lost"], f"jobs lost: {job_report}"
    assert not job_report["run_twice"], f"jobs run twice: {job_report}"
    assert not job_report["not_completed"], f"jobs not completed: {job_report}"
    assert not job_report["unknown_jobs_in_pool"], f"jobs nobody submitted: {job_report}"
    assert not job_report["unknown_jobs_run"], f"jobs nobody submitted ran: {job_report}"
