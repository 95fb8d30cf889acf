"""Router versions in the database (``router_policies``) and their ``policy.updated`` event.

At most one version is active; activating one deactivates the others in the same
transaction. The gateway reads the active one at start and re-reads a version when a
``policy.updated`` event names it (``artifact_uri`` = ``db:router_policies/<version>``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.optimizer.router.model import Router, check_threshold
from llmproxy.platform.db.models import RouterPolicyRow
from llmproxy.platform.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from llmproxy.platform.events import new_event_meta
from llmproxy.v1 import events_pb2

__all__ = [
    "ARTIFACT_PREFIX",
    "RouterSummary",
    "activate_router",
    "active_router",
    "deactivate_routers",
    "deactivation_event",
    "list_routers",
    "load_router",
    "policy_event",
    "save_router",
    "version_from_uri",
]

ARTIFACT_PREFIX = "db:router_policies/"


@dataclass(frozen=True, slots=True)
class RouterSummary:
    version: str
    active: bool
    threshold: float
    candidate_models: tuple[str, ...]
    trained_on: tuple[str, ...]
    metrics: dict[str, float]
    created_at: datetime
    activated_at: datetime | None


async def save_router(
    sessions: async_sessionmaker[AsyncSession], router: Router, *, now: datetime
) -> None:
    """Store a new (inactive) version; AlreadyExistsError when the version is taken."""
    if not router.version.strip():
        raise InvalidArgumentError("a router version must not be empty", field="version")
    async with sessions.begin() as session:
        if await session.get(RouterPolicyRow, router.version) is not None:
            raise AlreadyExistsError(f"router version {router.version!r} already exists")
        session.add(
            RouterPolicyRow(
                version=router.version,
                candidate_models=json.dumps(list(router.candidate_models)),
                threshold=router.threshold,
                embedding_model=router.embedding_model,
                trained_on=json.dumps(list(router.trained_on)),
                metrics=json.dumps(dict(router.metrics)),
                artifact=router.to_bytes(),
                active=False,
                created_at=now,
                activated_at=None,
            )
        )


def _summary(row: RouterPolicyRow) -> RouterSummary:
    return RouterSummary(
        version=row.version,
        active=row.active,
        threshold=row.threshold,
        candidate_models=tuple(json.loads(row.candidate_models)),
        trained_on=tuple(json.loads(row.trained_on)),
        metrics=json.loads(row.metrics),
        created_at=row.created_at,
        activated_at=row.activated_at,
    )


async def list_routers(sessions: async_sessionmaker[AsyncSession]) -> list[RouterSummary]:
    async with sessions() as session:
        rows: list[RouterPolicyRow] = list(
            await session.scalars(
                select(RouterPolicyRow).order_by(RouterPolicyRow.created_at.desc())
            )
        )
        return [_summary(row) for row in rows]


async def load_router(sessions: async_sessionmaker[AsyncSession], version: str) -> Router:
    async with sessions() as session:
        row = await session.get(RouterPolicyRow, version)
        if row is None:
            raise NotFoundError(f"no router version {version!r} (see: llmproxy router list)")
        router = Router.from_bytes(row.artifact)
        # the row's threshold wins: an operator may re-tune it without retraining
        return router.with_threshold(row.threshold)


async def active_router(sessions: async_sessionmaker[AsyncSession]) -> Router | None:
    async with sessions() as session:
        version = await session.scalar(
            select(RouterPolicyRow.version).where(RouterPolicyRow.active.is_(True))
        )
    return None if version is None else await load_router(sessions, version)


async def activate_router(
    sessions: async_sessionmaker[AsyncSession],
    version: str,
    *,
    now: datetime,
    threshold: float | None = None,
) -> Router:
    """Make ``version`` the one active router (optionally with a new threshold)."""
    async with sessions.begin() as session:
        row = await session.get(RouterPolicyRow, version)
        if row is None:
            raise NotFoundError(f"no router version {version!r} (see: llmproxy router list)")
        if threshold is not None:
            check_threshold(threshold, Router.from_bytes(row.artifact).rule)
        await session.execute(
            update(RouterPolicyRow).where(RouterPolicyRow.version != version).values(active=False)
        )
        row.active = True
        row.activated_at = now
        if threshold is not None:
            row.threshold = threshold
    return await load_router(sessions, version)


async def deactivate_routers(
    sessions: async_sessionmaker[AsyncSession],
) -> str | None:
    """No router active any more (gateways fall back to the rule-based policies); returns the
    version that was active, or None when none was (then nothing changes)."""
    async with sessions.begin() as session:
        version = await session.scalar(
            select(RouterPolicyRow.version).where(RouterPolicyRow.active.is_(True))
        )
        if version is not None:
            await session.execute(update(RouterPolicyRow).values(active=False))
    return version


def deactivation_event(*, source: str) -> events_pb2.PolicyUpdated:
    """``policy.updated`` saying that no router policy is active (an empty version)."""
    return events_pb2.PolicyUpdated(
        meta=new_event_meta(source), policy_id="router:none", router=events_pb2.RouterPolicy()
    )


def version_from_uri(uri: str) -> str:
    if not uri.startswith(ARTIFACT_PREFIX) or len(uri) == len(ARTIFACT_PREFIX):
        raise InvalidArgumentError(f"not a router artifact address: {uri!r}")
    return uri.removeprefix(ARTIFACT_PREFIX)


def policy_event(router: Router, *, source: str) -> events_pb2.PolicyUpdated:
    """``policy.updated`` announcing ``router`` as the active router policy."""
    event = events_pb2.PolicyUpdated(
        meta=new_event_meta(source),
        policy_id=f"router:{router.version}",
        router=events_pb2.RouterPolicy(
            version=router.version,
            artifact_uri=ARTIFACT_PREFIX + router.version,
            threshold=router.threshold,
            candidate_models=list(router.candidate_models),
            embedding_model=router.embedding_model,
        ),
    )
    event.router.eval_metrics.update(router.metrics)
    return event
