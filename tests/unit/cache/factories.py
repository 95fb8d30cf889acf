"""Plain factories for cache tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from llmproxy.cache.keys import ScopeKey, exact_key, scope_digest, semantic_parts
from llmproxy.cache.memory import Entry, Lookup
from llmproxy.cache.policy import Mode
from llmproxy.platform.embeddings import WordHashEmbedder

T0 = datetime(2025, 11, 24, 12, 0, tzinfo=UTC)
EMBEDDER = WordHashEmbedder()
SCOPE = ScopeKey("acme", "bot", "objective:cost", "", "")


def entry(prompt: str, *, scope: ScopeKey = SCOPE, n: int = 0, **overrides: Any) -> Entry:
    digest = scope_digest(scope)
    head, tail = semantic_parts(prompt)
    values: dict[str, Any] = {
        "id": f"e{n}-{abs(hash((prompt, digest))) % 10**8}",
        "tenant_id": scope.tenant_id,
        "app_id": scope.app_id,
        "conversation_id": "",
        "scope": digest,
        "key": exact_key(digest, prompt),
        "prompt": prompt[:2000],
        "tail": tail,
        "answer": f"answer to {prompt}",
        "model": "small",
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "output_tokens": 5,
        "cost_nanousd": 1000,
        "request_id": f"req-{n}",
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=1),
        "embedding": EMBEDDER.embed([head])[0],
    }
    return replace(Entry(**values), **overrides) if overrides else Entry(**values)


def lookup(
    prompt: str, *, scope: ScopeKey = SCOPE, mode: Mode = Mode.SEMANTIC, threshold: float = 0.5
) -> Lookup:
    digest = scope_digest(scope)
    head, tail = semantic_parts(prompt)
    return Lookup(
        tenant_id=scope.tenant_id,
        scope=digest,
        key=exact_key(digest, prompt),
        prompt=prompt[:2000],
        tail=tail,
        mode=mode,
        threshold=threshold,
        vector=EMBEDDER.embed([head])[0],
    )
