"""``llmproxy jobs get|cancel|watch`` name the owner they submit with: against a real
scheduler process, another owner's job answers like an unknown id and is left untouched."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from llmproxy.cli import main
from llmproxy.v1 import scheduler_pb2
from tests.integration.test_scheduler_service import (
    Stub,
    is_state,
    running_agent,
    scheduler_process,
    wait_for,
    wait_for_executor,
)

pytestmark = pytest.mark.nats


def _json(out: str) -> dict[str, object]:
    """The CLI's JSON line; the in-process executor agent's log lines share the captured stdout."""
    (line,) = [line for line in out.splitlines() if line.startswith("{")]
    loaded: dict[str, object] = json.loads(line)
    return loaded


async def test_the_jobs_cli_finds_and_cancels_only_its_owners_jobs(
    nats_url: str,
    sqlite_db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER", "alice")
    service = scheduler_process(nats_url, sqlite_db_url, tmp_path).start()

    async def cli(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, "--scheduler", service.address])
        out, err = capsys.readouterr()
        return code, out, err

    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = Stub(channel)
            async with running_agent(service.address, tmp_path / "jobs", slots=1):
                await wait_for_executor(stub, "local")
                code, out, _ = await cli("jobs", "submit", "--size", "30", "--json", "sleep 30")
                assert code == 0
                job = _json(out)
                assert job["owner"] == "alice"  # submit's default owner is $USER
                job_id = job["jobId"]
                await wait_for(stub, job_id, is_state(scheduler_pb2.JOB_STATE_RUNNING))

                code, _, unknown = await cli("jobs", "get", "no-such-job", "--owner", "bob")
                assert code == 1 and "no-such-job" in unknown
                for action in ("get", "cancel", "watch"):
                    code, out, err = await cli("jobs", action, job_id, "--owner", "bob")
                    assert (code, out) == (1, ""), action
                    # The very answer of an unknown id, plus a hint naming the owner asked.
                    assert f"unknown job {job_id!r}" in err, err
                    assert "owner 'bob'" in err and "--any-owner" in err, err

                untouched = await stub.GetJob(scheduler_pb2.JobRef(job_id=job_id), timeout=5)
                assert untouched.state == scheduler_pb2.JOB_STATE_RUNNING
                assert untouched.owner == "alice"

                # $USER (the owner submit used) and --any-owner find it; --owner alice cancels.
                code, out, _ = await cli("jobs", "get", job_id, "--json")
                assert code == 0 and _json(out)["state"] == "JOB_STATE_RUNNING"
                monkeypatch.setenv("USER", "bob")
                code, _, _ = await cli("jobs", "get", job_id)
                assert code == 1
                code, out, _ = await cli("jobs", "get", job_id, "--any-owner", "--json")
                assert code == 0 and _json(out)["jobId"] == job_id
                code, _, _ = await cli("jobs", "cancel", job_id, "--owner", "alice")
                assert code == 0
                await wait_for(stub, job_id, is_state(scheduler_pb2.JOB_STATE_CANCELLED))
    finally:
        service.kill()
