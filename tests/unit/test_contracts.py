"""The committed generated code is exactly what the .proto files generate."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_contracts_match_the_proto_files() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_its_own_proto_file() -> None:
    protos = {p.stem for p in (ROOT / "proto" / "llmproxy" / "v1").glob("*.proto")}
    services = {"gateway", "context", "cache", "scheduler", "profiler", "optimizer", "whatsapp"}
    assert services | {"common", "events"} <= protos
