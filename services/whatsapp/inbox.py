"""The channel's rows: the durable inbox (de-duplication + work queue), users, what was sent.

A message is written here before the webhook answers Meta, so an accepted message survives
a crash; its unique ``message_id`` turns every redelivery into a no-op. Workers claim the
oldest unfinished message of each user with a lease (a crashed worker's lease runs out and
another claims the message again), store the decided reply before sending it (a retry
resends the same text rather than asking the gateway again) and count the parts sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmproxy.platform.db.models import (
    WhatsAppConversation,
    WhatsAppMessage,
    WhatsAppOutbound,
    WhatsAppStatus,
    WhatsAppUser,
)
from llmproxy.whatsapp.core import UserState
from llmproxy.whatsapp.payload import Inbound, Notification

__all__ = ["Claimed", "SqlInbox", "new_user"]

PENDING, PROCESSING, DONE = "pending", "processing", "done"


def new_user(wa_id: str) -> UserState:
    """A user seen for the first time: a fresh pseudonym, default preferences."""
    return UserState(wa_id=wa_id, user_id=f"wa-{uuid.uuid4().hex}")


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message a worker holds the lease of."""

    seq: int
    message: Inbound
    #: claims so far, this one included
    attempts: int
    #: the reply decided on an earlier attempt (None: not decided yet)
    reply: str | None
    outcome: str | None
    parts_sent: int
    request_id: str | None


_CLAIMED_COLUMNS = (
    WhatsAppMessage.seq,
    WhatsAppMessage.message_id,
    WhatsAppMessage.wa_id,
    WhatsAppMessage.kind,
    WhatsAppMessage.body,
    WhatsAppMessage.sent_at,
    WhatsAppMessage.attempts,
    WhatsAppMessage.reply,
    WhatsAppMessage.outcome,
    WhatsAppMessage.parts_sent,
    WhatsAppMessage.request_id,
)


def _user_state(row: WhatsAppUser) -> UserState:
    return UserState(
        wa_id=row.wa_id,
        user_id=row.user_id,
        conversation_id=row.conversation_id or "",
        mode=row.mode,
        pinned_model=row.pinned_model,
        context_strategy=row.context_strategy,
        context_param=row.context_param,
        cache_enabled=row.cache_enabled,
        last_inbound_at=row.last_inbound_at,
        rate_window_start=row.rate_window_start,
        rate_count=row.rate_count,
        spend_day=row.spend_day,
        spend_nanousd=row.spend_nanousd,
    )


def _user_values(user: UserState) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "conversation_id": user.conversation_id or None,
        "mode": user.mode,
        "pinned_model": user.pinned_model,
        "context_strategy": user.context_strategy,
        "context_param": user.context_param,
        "cache_enabled": user.cache_enabled,
        "last_inbound_at": user.last_inbound_at,
        "rate_window_start": user.rate_window_start,
        "rate_count": user.rate_count,
        "spend_day": user.spend_day,
        "spend_nanousd": user.spend_nanousd,
    }


class SqlInbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    # -- the webhook ------------------------------------------------------------------------

    async def accept(self, notification: Notification, now: datetime) -> list[str]:
        """Store new messages and statuses in one transaction; the ids that were new."""
        unique = {m.message_id: m for m in notification.messages}
        new: list[str] = []
        async with self._sessions.begin() as session:
            if unique:
                statement = (
                    self._insert(WhatsAppMessage)
                    .values(
                        [
                            {
                                "message_id": m.message_id,
                                "wa_id": m.wa_id,
                                "kind": m.kind,
                                "body": m.text,
                                "sent_at": m.sent_at,
                                "received_at": now,
                                "state": PENDING,
                                "attempts": 0,
                                "next_attempt_at": now,
                                "parts_sent": 0,
                            }
                            for m in unique.values()
                        ]
                    )
                    .on_conflict_do_nothing(index_elements=["message_id"])
                    .returning(WhatsAppMessage.message_id)
                )
                new = list((await session.scalars(statement)).all())
            statuses = {(s.message_id, s.status): s for s in notification.statuses}
            if statuses:
                await session.execute(
                    self._insert(WhatsAppStatus)
                    .values(
                        [
                            {
                                "message_id": s.message_id,
                                "status": s.status,
                                "at": s.at,
                                "error": s.error or None,
                                "recorded_at": now,
                            }
                            for s in statuses.values()
                        ]
                    )
                    .on_conflict_do_nothing(index_elements=["message_id", "status"])
                )
        return new

    # -- workers ----------------------------------------------------------------------------

    async def claim(
        self, limit: int, *, busy: set[str], owner: str, now: datetime, lease: timedelta
    ) -> list[Claimed]:
        """Up to ``limit`` messages, each the oldest unfinished one of its user, leased to
        ``owner``. Users in ``busy`` (being served here) and users whose oldest message
        waits for a retry or is leased elsewhere are skipped, so a user's messages are
        answered in order."""
        if limit <= 0:
            return []
        M = WhatsAppMessage
        async with self._sessions.begin() as session:
            rows = (
                await session.execute(
                    select(M.seq, M.wa_id, M.state, M.next_attempt_at, M.lease_until)
                    .where(M.state.in_((PENDING, PROCESSING)))
                    .order_by(M.seq)
                    .limit(limit * 4 + len(busy) + 16)
                )
            ).all()
            seen: set[str] = set(busy)
            chosen: list[int] = []
            for row in rows:
                if row.wa_id in seen:
                    continue
                seen.add(row.wa_id)
                lease_until: datetime | None = row.lease_until
                ready = (row.state == PENDING and row.next_attempt_at <= now) or (
                    row.state == PROCESSING and lease_until is not None and lease_until < now
                )
                if ready:
                    chosen.append(row.seq)
                    if len(chosen) == limit:
                        break
            if not chosen:
                return []
            claimed = (
                await session.execute(
                    update(M)
                    .where(
                        M.seq.in_(chosen),
                        or_(
                            M.state == PENDING,
                            and_(M.state == PROCESSING, M.lease_until < now),
                        ),
                    )
                    .values(
                        state=PROCESSING,
                        lease_owner=owner,
                        lease_until=now + lease,
                        attempts=M.attempts + 1,
                    )
                    .returning(*_CLAIMED_COLUMNS)
                )
            ).all()
        return sorted(
            (
                Claimed(
                    seq=r.seq,
                    message=Inbound(r.message_id, r.wa_id, r.kind, r.body, r.sent_at),
                    attempts=r.attempts,
                    reply=r.reply,
                    outcome=r.outcome,
                    parts_sent=r.parts_sent,
                    request_id=r.request_id,
                )
                for r in claimed
            ),
            key=lambda c: c.seq,
        )

    async def load_user(self, wa_id: str) -> UserState | None:
        async with self._sessions() as session:
            row = await session.get(WhatsAppUser, wa_id)
        return _user_state(row) if row is not None else None

    async def save_decision(
        self,
        seq: int,
        *,
        user: UserState | None,
        tenant_id: str,
        now: datetime,
        reply: str | None,
        outcome: str,
        request_id: str | None = None,
        done: bool = False,
    ) -> None:
        """Store the user's new state and the message's reply (or, ``done``, finish it)."""
        async with self._sessions.begin() as session:
            if user is not None:
                await self._save_user(session, user, tenant_id, now)
            values: dict[str, Any] = {"reply": reply, "outcome": outcome}
            if request_id:
                values["request_id"] = request_id
            if done:
                values.update(state=DONE, finished_at=now, lease_owner=None, lease_until=None)
            await session.execute(
                update(WhatsAppMessage).where(WhatsAppMessage.seq == seq).values(**values)
            )

    async def _save_user(
        self, session: AsyncSession, user: UserState, tenant_id: str, now: datetime
    ) -> None:
        values = _user_values(user)
        row = await session.get(WhatsAppUser, user.wa_id)
        if row is None:
            session.add(
                WhatsAppUser(
                    wa_id=user.wa_id, tenant_id=tenant_id, created_at=now, updated_at=now, **values
                )
            )
        else:
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = now
        if user.conversation_id:
            known = await session.get(WhatsAppConversation, user.conversation_id)
            if known is None:
                session.add(
                    WhatsAppConversation(
                        conversation_id=user.conversation_id, wa_id=user.wa_id, created_at=now
                    )
                )

    async def record_sent(
        self,
        seq: int | None,
        *,
        message_id: str,
        kind: str,
        now: datetime,
        parts_sent: int | None = None,
        finished_outcome: str | None = None,
    ) -> None:
        """Remember a sent message; count a reply part; finish the inbound one if it was last."""
        async with self._sessions.begin() as session:
            session.add(WhatsAppOutbound(id=message_id, inbound_seq=seq, kind=kind, sent_at=now))
            if seq is None:
                return
            values: dict[str, Any] = {}
            if parts_sent is not None:
                values["parts_sent"] = parts_sent
            if finished_outcome is not None:
                values.update(
                    state=DONE,
                    outcome=finished_outcome,
                    finished_at=now,
                    lease_owner=None,
                    lease_until=None,
                )
            if values:
                await session.execute(
                    update(WhatsAppMessage).where(WhatsAppMessage.seq == seq).values(**values)
                )

    async def finish(self, seq: int, outcome: str, now: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(WhatsAppMessage)
                .where(WhatsAppMessage.seq == seq)
                .values(
                    state=DONE, outcome=outcome, finished_at=now, lease_owner=None, lease_until=None
                )
            )

    async def release(self, seq: int, *, retry_at: datetime, note: str) -> None:
        """Give a message back for a later attempt (a dependency failed)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(WhatsAppMessage)
                .where(WhatsAppMessage.seq == seq)
                .values(
                    state=PENDING,
                    next_attempt_at=retry_at,
                    lease_owner=None,
                    lease_until=None,
                    outcome=note[:200],
                )
            )

    # -- erasure ----------------------------------------------------------------------------

    async def conversations(self, wa_id: str) -> list[str]:
        async with self._sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(WhatsAppConversation.conversation_id).where(
                            WhatsAppConversation.wa_id == wa_id
                        )
                    )
                ).all()
            )

    async def erase(self, wa_id: str) -> None:
        """Delete the user and their conversations' rows; blank their messages' content.

        The message ids stay (without sender or text), so a redelivery after the erasure
        is still recognised and not answered again.
        """
        async with self._sessions.begin() as session:
            await session.execute(delete(WhatsAppUser).where(WhatsAppUser.wa_id == wa_id))
            await session.execute(
                delete(WhatsAppConversation).where(WhatsAppConversation.wa_id == wa_id)
            )
            await session.execute(
                update(WhatsAppMessage)
                .where(WhatsAppMessage.wa_id == wa_id)
                .values(wa_id="", body="", reply=None)
            )
