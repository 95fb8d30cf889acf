"""The context fingerprint: one hash scheme shared by the context service and the gateway.

It identifies everything sent before the new prompt, so a cache entry answers only in the
context it was asked in. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["context_fingerprint"]


def context_fingerprint(messages: Iterable[tuple[str, str]]) -> str:
    """SHA-256 over ``(role, content)`` pairs, in order, with separators no text can fake."""
    digest = hashlib.sha256()
    for role, content in messages:
        digest.update(role.encode())
        digest.update(b"\x00")
        digest.update(content.encode())
        digest.update(b"\x01")
    return digest.hexdigest()
