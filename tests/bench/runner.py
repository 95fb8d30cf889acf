"""Runs one benchmark script at smoke size, as a user would, and hands back what it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_bench(
    script: str, *args: str, out: Path, timeout: float = 180
) -> tuple[dict[str, Any], str]:
    """``python bench/<script> ARGS --out OUT``; asserts it succeeded and returns the JSON it
    wrote to ``out`` (never the committed results) and its standard output."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result, proc.stdout
