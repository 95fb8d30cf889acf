"""Embeddings of the routing data, computed once and cached by content hash.

Training and the benchmark embed the same 14k MMLU prompts; on a busy 2-core machine that
takes many minutes, so the vectors are kept under ``$XDG_CACHE_HOME/llmproxy``
(``~/.cache/llmproxy``), never in the repository (~11 MB as float16). The key covers the
embedding model's id and every prompt, so a changed prompt or model is embedded afresh.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from llmproxy.platform.embeddings import DIMENSIONS, MAX_TOKENS, MODEL_ID, TextEmbedder

__all__ = ["cache_dir", "embed_cached"]


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "llmproxy" / "router-embeddings"


def embed_cached(prompts: tuple[str, ...], embedder: TextEmbedder) -> np.ndarray:
    """Embeddings of ``prompts``, from the cache when these exact prompts were embedded before."""
    digest = hashlib.sha256(MODEL_ID.encode())
    cap = int(getattr(embedder, "max_tokens", MAX_TOKENS))
    if cap != MAX_TOKENS:  # a shorter head is another vector
        digest.update(f"max_tokens={cap}".encode())
    for prompt in prompts:
        digest.update(hashlib.sha256(prompt.encode()).digest())
    path = cache_dir() / f"{digest.hexdigest()[:24]}.npy"
    if path.exists():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape == (len(prompts), DIMENSIONS):
            return vectors.astype(np.float32)
    started = time.perf_counter()
    # long prompts first in batches of similar length: less padding, same vectors
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    vectors = np.zeros((len(prompts), DIMENSIONS), dtype=np.float32)
    step = 64
    for start in range(0, len(order), step):
        chunk = order[start : start + step]
        vectors[chunk] = embedder.embed([prompts[i] for i in chunk])
        if start // step % 20 == 0:
            print(f"  embedded {start + len(chunk)}/{len(prompts)}", file=sys.stderr, flush=True)
    print(f"  embedding took {time.perf_counter() - started:.1f} s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors.astype(np.float16))
    return vectors.astype(np.float16).astype(np.float32)
