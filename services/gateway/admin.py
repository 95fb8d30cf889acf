"""Administration of tenants, apps, API keys and limits (the ``llmproxy`` admin commands).

Each operation is one transaction on the gateway's tables. Keys are stored hashed; the
plaintext is returned once by :func:`create_key` and cannot be recovered afterwards.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.gateway.keys import DEFAULT_SCOPES, hash_secret, issue_key, parse_key, parse_scopes
from llmproxy.gateway.limits import LimitRule, validate_rule
from llmproxy.gateway.store import rule_of
from llmproxy.platform.db.models import ApiKey, Application, Tenant, UsageLimit
from llmproxy.platform.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    LLMProxyError,
    NotFoundError,
)

__all__ = [
    "KeyInfo",
    "app_id_of",
    "create_key",
    "create_tenant",
    "delete_limit",
    "ensure_local_key",
    "list_keys",
    "list_limits",
    "list_tenants",
    "revoke_key",
    "set_limit",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgumentError(
            f"{what} name {name!r} must be 1-63 characters of a-z, 0-9, '-' or '_', "
            "starting with a letter or digit",
            field=what,
        )
    return name


def app_id_of(tenant_id: str, app_name: str) -> str:
    """Apps are named within a tenant; their id joins both (':' is never in a name)."""
    return f"{tenant_id}:{app_name}"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as listed: never its secret."""

    key_id: str
    tenant_id: str
    app_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


async def create_tenant(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    *,
    reference_model: str | None = None,
    clock: Clock = _utcnow,
) -> Tenant:
    """A new tenant whose id is its name; AlreadyExistsError if taken."""
    _check_name(name, "tenant")
    async with sessions.begin() as session:
        if await session.get(Tenant, name) is not None:
            raise AlreadyExistsError(f"tenant {name!r} already exists")
        tenant = Tenant(id=name, name=name, reference_model=reference_model, created_at=clock())
        session.add(tenant)
    return tenant


async def list_tenants(sessions: async_sessionmaker[AsyncSession]) -> list[Tenant]:
    async with sessions() as session:
        return list(await session.scalars(select(Tenant).order_by(Tenant.id)))


async def create_key(
    sessions: async_sessionmaker[AsyncSession],
    *,
    tenant: str,
    app: str,
    name: str = "",
    scopes: Iterable[str] = DEFAULT_SCOPES,
    clock: Clock = _utcnow,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> tuple[KeyInfo, str]:
    """A new key for ``app`` of ``tenant`` (the app is created if new): (info, plaintext)."""
    _check_name(app, "app")
    granted = parse_scopes(scopes)
    if not granted:
        raise InvalidArgumentError("a key needs at least one scope", field="scopes")
    issued = issue_key(random_bytes)
    now = clock()
    async with sessions.begin() as session:
        if await session.get(Tenant, tenant) is None:
            raise NotFoundError(
                f"unknown tenant {tenant!r} (create it with: llmproxy tenants create {tenant})"
            )
        app_id = app_id_of(tenant, app)
        if await session.get(Application, app_id) is None:
            session.add(Application(id=app_id, tenant_id=tenant, name=app, created_at=now))
            await session.flush()  # the key's foreign key needs the app row first
        row = ApiKey(
            id=issued.key_id,
            tenant_id=tenant,
            app_id=app_id,
            name=name or app,
            secret_hash=issued.secret_hash,
            scopes=" ".join(sorted(granted)),
            created_at=now,
            revoked_at=None,
        )
        session.add(row)
    return _info(row), issued.plaintext


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        key_id=row.id,
        tenant_id=row.tenant_id,
        app_id=row.app_id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def list_keys(
    sessions: async_sessionmaker[AsyncSession], *, tenant: str | None = None
) -> list[KeyInfo]:
    query = select(ApiKey).order_by(ApiKey.tenant_id, ApiKey.created_at)
    if tenant:
        query = query.where(ApiKey.tenant_id == tenant)
    async with sessions() as session:
        rows: list[ApiKey] = list(await session.scalars(query))
    return [_info(row) for row in rows]


async def revoke_key(
    sessions: async_sessionmaker[AsyncSession], key_id: str, *, clock: Clock = _utcnow
) -> KeyInfo:
    """Revoke a key (idempotent); NotFoundError for an unknown id."""
    async with sessions.begin() as session:
        row = await session.get(ApiKey, key_id)
        if row is None:
            raise NotFoundError(f"unknown key {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = clock()
    return _info(row)


async def set_limit(
    sessions: async_sessionmaker[AsyncSession],
    *,
    tenant: str,
    metric: str,
    window: str,
    amount: int,
    app: str | None = None,
    key_id: str | None = None,
    user_id: str | None = None,
    clock: Clock = _utcnow,
) -> LimitRule:
    """Add a limit; ``app`` is the app's name within the tenant."""
    rule = LimitRule(
        id=f"lim_{secrets.token_hex(4)}",
        tenant_id=tenant,
        metric=metric,
        window=window,
        amount=amount,
        app_id=app_id_of(tenant, app) if app else None,
        key_id=key_id,
        user_id=user_id,
    )
    validate_rule(rule)
    async with sessions.begin() as session:
        if await session.get(Tenant, tenant) is None:
            raise NotFoundError(f"unknown tenant {tenant!r}")
        session.add(
            UsageLimit(
                id=rule.id,
                tenant_id=rule.tenant_id,
                app_id=rule.app_id,
                key_id=rule.key_id,
                user_id=rule.user_id,
                metric=rule.metric,
                window=rule.window,
                amount=rule.amount,
                created_at=clock(),
            )
        )
    return rule


async def list_limits(
    sessions: async_sessionmaker[AsyncSession], *, tenant: str | None = None
) -> list[LimitRule]:
    query = select(UsageLimit).order_by(UsageLimit.tenant_id, UsageLimit.created_at)
    if tenant:
        query = query.where(UsageLimit.tenant_id == tenant)
    async with sessions() as session:
        rows: list[UsageLimit] = list(await session.scalars(query))
    return [rule_of(row) for row in rows]


async def delete_limit(sessions: async_sessionmaker[AsyncSession], limit_id: str) -> None:
    async with sessions.begin() as session:
        row = await session.get(UsageLimit, limit_id)
        if row is None:
            raise NotFoundError(f"unknown limit {limit_id!r}")
        await session.delete(row)


LOCAL_TENANT = "local"
LOCAL_APP = "cli"
KEY_FILE = "api_key"


async def ensure_local_key(sessions: async_sessionmaker[AsyncSession], home: Path) -> str:
    """The embedded stack's own key: reused from ``home/api_key`` while valid, else created.

    ``llmproxy up`` calls this at every start so ``llmproxy ask`` (which reads the file)
    works out of the box; the file is readable by its owner only.
    """
    path = home / KEY_FILE
    try:
        existing = path.read_text().strip()
    except OSError:
        existing = ""
    if existing:
        try:
            key_id, secret = parse_key(existing)
        except LLMProxyError:
            key_id = secret = ""
        if key_id:
            async with sessions() as session:
                row: ApiKey | None = await session.get(ApiKey, key_id)
            if (
                row is not None
                and row.revoked_at is None
                and row.secret_hash == hash_secret(secret)
            ):
                return existing
    async with sessions() as session:
        has_tenant = await session.get(Tenant, LOCAL_TENANT) is not None
    if not has_tenant:
        await create_tenant(sessions, LOCAL_TENANT)
    _, plaintext = await create_key(
        sessions, tenant=LOCAL_TENANT, app=LOCAL_APP, name="llmproxy up (local CLI)"
    )
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(plaintext + "\n")
    return plaintext
