"""API keys: their format, how they are hashed and verified, and what they may do. Pure.

A key reads ``llp_<id>_<secret>``. The id is public (it names the row, shows in lists
and logs); the secret is 32 random bytes, and only its SHA-256 is stored. A fast hash is
the right one here: a slow password KDF (bcrypt, scrypt) defends *guessable* secrets,
and these have 256 bits of entropy, so it would only add tens of milliseconds to every
request. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmproxy.platform.errors import InvalidArgumentError, UnauthenticatedError

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_SCOPES",
    "SCOPE_CHAT",
    "SCOPE_USAGE",
    "SCOPE_USAGE_TENANT",
    "IssuedKey",
    "hash_secret",
    "issue_key",
    "parse_key",
    "parse_scopes",
    "verify_secret",
]

PREFIX = "llp"
#: Ask, AskStream, Quote, Feedback, /v1/chat/completions, /v1/models
SCOPE_CHAT = "chat"
#: Usage of the key's own app (app, user and conversation levels)
SCOPE_USAGE = "usage"
#: Usage of the whole tenant
SCOPE_USAGE_TENANT = "usage:tenant"
ALL_SCOPES = frozenset({SCOPE_CHAT, SCOPE_USAGE, SCOPE_USAGE_TENANT})
DEFAULT_SCOPES = frozenset({SCOPE_CHAT, SCOPE_USAGE})

_ID_BYTES = 6  # 8 url-safe characters: unique enough for a primary key, short in lists
_SECRET_BYTES = 32
_KEY = re.compile(r"^llp_([A-Za-z0-9-]{8})_([A-Za-z0-9_-]{43})$")
# Domain separation: the same bytes hashed for another purpose never match a key hash.
_HASH_CONTEXT = b"llmproxy-api-key-v1:"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key. ``plaintext`` is shown to the operator once and never stored."""

    key_id: str
    secret_hash: str
    plaintext: str


def _urlsafe(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_key(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> IssuedKey:
    """A fresh key from ``random_bytes`` (injected so tests are deterministic)."""
    # '_' separates the parts, so the id must not contain one; '-' is fine
    key_id = _urlsafe(random_bytes(_ID_BYTES)).replace("_", "-")
    secret = _urlsafe(random_bytes(_SECRET_BYTES))
    return IssuedKey(key_id, hash_secret(secret), f"{PREFIX}_{key_id}_{secret}")


def parse_key(text: str) -> tuple[str, str]:
    """``(key_id, secret)`` of a presented key; UnauthenticatedError when malformed."""
    match = _KEY.match(text.strip())
    if match is None:
        raise UnauthenticatedError(
            "invalid API key: expected 'llp_<id>_<secret>' as 'Authorization: Bearer <key>'"
        )
    return match.group(1), match.group(2)


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a key's secret part (what the database stores)."""
    return hashlib.sha256(_HASH_CONTEXT + secret.encode()).hexdigest()


def verify_secret(secret: str, stored_hash: str) -> bool:
    """True when ``secret`` hashes to ``stored_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def parse_scopes(names: Iterable[str]) -> frozenset[str]:
    """Validated scope names; InvalidArgumentError names an unknown one."""
    scopes = frozenset(n.strip() for n in names if n.strip())
    unknown = scopes - ALL_SCOPES
    if unknown:
        raise InvalidArgumentError(
            f"unknown scope(s) {sorted(unknown)}; known: {sorted(ALL_SCOPES)}", field="scopes"
        )
    return scopes
