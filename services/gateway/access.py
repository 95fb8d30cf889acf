"""Who is calling: API key → tenant, app, scopes. The adapter both front doors share.

Keys are looked up by their public id and verified against the stored hash on every
request; a found key's row is cached for ``cache_ttl_s`` so the hot path needs no database
round trip (a revocation takes effect within that time). Unknown ids are never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from llmproxy.gateway.keys import DEFAULT_SCOPES, parse_key, verify_secret
from llmproxy.gateway.limits import Who
from llmproxy.gateway.store import KeyRecord
from llmproxy.platform.errors import PermissionDeniedError, UnauthenticatedError

__all__ = ["Authenticator", "Caller", "KeyDirectory"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking (from authentication)."""

    tenant_id: str
    app_id: str
    key_id: str = ""
    scopes: frozenset[str] = field(default=DEFAULT_SCOPES)
    #: the tenant's reference model for savings ("" = the catalog's)
    reference_model: str = ""

    def who(self, user_id: str = "") -> Who:
        return Who(self.tenant_id, self.app_id, self.key_id, user_id)

    def require(self, scope: str) -> None:
        """PermissionDeniedError unless the key carries ``scope``."""
        if scope not in self.scopes:
            raise PermissionDeniedError(
                f"this API key lacks the {scope!r} scope (it has: {', '.join(sorted(self.scopes))})"
            )


class KeyDirectory(Protocol):
    async def find_key(self, key_id: str) -> KeyRecord | None: ...


class Authenticator:
    """Turns an ``Authorization`` value into a :class:`Caller`, or refuses it."""

    def __init__(
        self,
        directory: KeyDirectory,
        *,
        cache_ttl_s: float = 5.0,
        anonymous: Caller | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._ttl = cache_ttl_s
        self._anonymous = anonymous
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, KeyRecord]] = {}

    async def authenticate(self, authorization: str | None) -> Caller:
        """``authorization`` is "Bearer <key>" (or the bare key); None when absent."""
        if not authorization or not authorization.strip():
            if self._anonymous is not None:
                return self._anonymous
            raise UnauthenticatedError(
                "missing API key: send 'Authorization: Bearer <key>' "
                "(create one with: llmproxy keys create --tenant T --app A)"
            )
        scheme, _, token = authorization.strip().partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else authorization.strip()
        key_id, secret = parse_key(presented)
        record = await self._lookup(key_id)
        if record is None or not verify_secret(secret, record.secret_hash):
            raise UnauthenticatedError(f"invalid API key (id {key_id!r})")
        if record.revoked:
            raise UnauthenticatedError(f"API key {key_id!r} has been revoked")
        return Caller(
            tenant_id=record.tenant_id,
            app_id=record.app_id,
            key_id=record.key_id,
            scopes=record.scopes,
            reference_model=record.reference_model,
        )

    async def _lookup(self, key_id: str) -> KeyRecord | None:
        cached = self._cache.get(key_id)
        now = self._monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self._directory.find_key(key_id)
        if record is not None and self._ttl > 0:
            if len(self._cache) > 100_000:  # bound memory under a flood of distinct keys
                self._cache.clear()
            self._cache[key_id] = (now + self._ttl, record)
        return record
