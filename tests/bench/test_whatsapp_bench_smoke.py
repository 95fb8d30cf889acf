"""The WhatsApp load benchmark runs end to end at smoke size (20 posts/s for 3 s) and writes
its JSON where it is told (never over the committed results)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.nats


def test_whatsapp_load_smoke_answers_every_accepted_message_once(tmp_path: Path) -> None:
    out = tmp_path / "whatsapp_load.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "whatsapp" / "load.py"),
            "--smoke",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())["result"]
    assert result["statuses"] == {"200": 60}
    assert result["accepted"] == 60 and result["all_answered_once"]
    assert result["ack_client_ms"]["p50"] > 0
