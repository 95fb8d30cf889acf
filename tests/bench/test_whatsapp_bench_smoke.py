"""The WhatsApp load benchmark runs end to end at smoke size (20 posts/s for 3 s) and writes
its JSON where it is told (never over the committed results)."""

from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = pytest.mark.nats


def test_whatsapp_load_smoke_answers_every_accepted_message_once(tmp_path: Path) -> None:
    out = tmp_path / "whatsapp_load.json"
    written, _ = run_bench("whatsapp/load.py", "--smoke", out=out, timeout=240)
    result = written["result"]
    assert result["statuses"] == {"200": 60}
    assert result["accepted"] == 60 and result["all_answered_once"]
    assert result["ack_client_ms"]["p50"] > 0
