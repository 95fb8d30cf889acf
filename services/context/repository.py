"""Conversations and turns in the database (adapter: rows <-> plain records)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    bindparam,
    delete,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from llmproxy.context.strategies import TurnRecord
from llmproxy.platform.db.models import Conversation, Turn
from llmproxy.platform.embeddings import vector_from_bytes
from llmproxy.platform.errors import NotFoundError

__all__ = ["ConversationHead", "ConversationRepository", "NewTurn"]


@dataclass(frozen=True, slots=True)
class NewTurn:
    role: str
    content: str
    tokens: int
    #: float32 embedding bytes (see ``llmproxy.platform.embeddings.vector_to_bytes``)
    embedding: bytes | None = None


def _read_since_query(*, with_summary: bool) -> Select[Any]:
    """The statement of :meth:`ConversationRepository.read_since` (built once: it is on
    every request's path, and building it costs more than running it on SQLite)."""
    summary_columns = (
        (Conversation.summary, Conversation.summary_upto_seq)
        if with_summary
        else (null().label("summary"), null().label("summary_upto_seq"))
    )
    visible = and_(
        Turn.conversation_id == Conversation.id,
        Turn.seq > bindparam("after", type_=Integer),
        or_(Conversation.reset_at.is_(None), Turn.created_at > Conversation.reset_at),
    )
    return (
        select(
            Conversation.id,
            Conversation.reset_at,
            *summary_columns,
            Turn.seq,
            Turn.role,
            Turn.content,
            Turn.tokens,
            Turn.embedding,
        )
        .select_from(Conversation)
        .outerjoin(Turn, visible)
        .where(
            Conversation.id == bindparam("conversation_id", type_=String),
            Conversation.tenant_id == bindparam("tenant_id", type_=String),
        )
        .order_by(Turn.seq)
    )


_READ_SINCE = {flag: _read_since_query(with_summary=flag) for flag in (False, True)}


@dataclass(frozen=True, slots=True)
class ConversationHead:
    """What a context build needs of a conversation's row."""

    id: str
    reset_at: datetime | None
    summary: str
    summary_upto_seq: int


class ConversationRepository:
    """Every query filters on the tenant: another tenant's conversation is simply unknown."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(
        self, *, tenant_id: str, app_id: str, user_id: str, now: datetime
    ) -> Conversation:
        conversation = Conversation(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            app_id=app_id,
            user_id=user_id or None,
            created_at=now,
            updated_at=now,
        )
        self._session.add(conversation)
        await self._session.flush()
        return conversation

    async def get(self, *, tenant_id: str, conversation_id: str) -> Conversation:
        conversation = await self._session.scalar(
            select(Conversation).where(
                Conversation.id == conversation_id, Conversation.tenant_id == tenant_id
            )
        )
        if conversation is None:
            raise NotFoundError(f"unknown conversation {conversation_id!r}")
        return conversation

    async def turns(self, conversation: Conversation, *, since_reset: bool) -> list[Turn]:
        query = select(Turn).where(Turn.conversation_id == conversation.id).order_by(Turn.seq)
        if since_reset and conversation.reset_at is not None:
            query = query.where(Turn.created_at > conversation.reset_at)
        return list(await self._session.scalars(query))

    async def history(
        self, conversation: Conversation, *, embeddings: bool = False
    ) -> list[TurnRecord]:
        """The turns a strategy may send (those after the last reset), oldest first.

        Plain columns, not ORM objects: this is on every request's path. ``embeddings``
        loads the stored vectors too (only ``relevant`` needs them).
        """
        columns = [Turn.seq, Turn.role, Turn.content, Turn.tokens]
        if embeddings:
            columns.append(Turn.embedding)
        query = select(*columns).where(Turn.conversation_id == conversation.id).order_by(Turn.seq)
        if conversation.reset_at is not None:
            query = query.where(Turn.created_at > conversation.reset_at)
        return [
            TurnRecord(
                seq=row[0],
                role=row[1],
                content=row[2],
                tokens=row[3],
                embedding=vector_from_bytes(row[4]) if embeddings else None,
            )
            for row in await self._session.execute(query)
        ]

    async def read_since(
        self,
        *,
        tenant_id: str,
        conversation_id: str,
        after_seq: int,
        with_summary: bool,
    ) -> tuple[ConversationHead, list[TurnRecord]]:
        """The conversation's row and its visible turns (after the last reset) with
        ``seq > after_seq``, oldest first, embeddings included, in one query.

        Filtered on the tenant: another tenant's conversation is NOT_FOUND, exactly like an
        unknown one. ``with_summary`` reads the rolling summary too (only ``summary`` needs
        it; it would otherwise be repeated on every row).
        """
        rows = list(
            await self._session.execute(
                _READ_SINCE[with_summary],
                {"conversation_id": conversation_id, "tenant_id": tenant_id, "after": after_seq},
            )
        )
        if not rows:
            raise NotFoundError(f"unknown conversation {conversation_id!r}")
        first = rows[0]
        head = ConversationHead(
            id=first[0], reset_at=first[1], summary=first[2] or "", summary_upto_seq=first[3] or 0
        )
        turns = [
            TurnRecord(
                seq=row[4],
                role=row[5],
                content=row[6],
                tokens=row[7],
                embedding=vector_from_bytes(row[8]),
            )
            for row in rows
            if row[4] is not None  # the outer join's row of a conversation with none new
        ]
        return head, turns

    async def set_embeddings(self, conversation: Conversation, vectors: dict[int, bytes]) -> None:
        """Store embeddings computed after the turns were written, by turn seq."""
        for seq, data in vectors.items():
            await self._session.execute(
                update(Turn)
                .where(Turn.conversation_id == conversation.id, Turn.seq == seq)
                .values(embedding=data)
            )

    async def save_summary(
        self,
        *,
        tenant_id: str,
        conversation_id: str,
        summary: str,
        upto_seq: int,
        expected_upto_seq: int,
        expected_reset_at: datetime | None,
    ) -> bool:
        """Replace the summary unless another writer, a reset or an erasure came first.

        A conditional update, so two replicas refreshing at once cannot both win.
        """
        same_reset = (
            Conversation.reset_at.is_(None)
            if expected_reset_at is None
            else Conversation.reset_at == expected_reset_at
        )
        result = await self._session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.tenant_id == tenant_id,
                func.coalesce(Conversation.summary_upto_seq, 0) == expected_upto_seq,
                same_reset,
            )
            .values(summary=summary, summary_upto_seq=upto_seq)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def append(
        self,
        conversation: Conversation,
        turns: Sequence[NewTurn],
        *,
        request_id: str,
        now: datetime,
    ) -> int:
        """Append ``turns``; a request already appended adds nothing. Returns the turn count."""
        if request_id:
            existing = await self._session.scalar(
                select(func.count()).where(
                    Turn.conversation_id == conversation.id, Turn.request_id == request_id
                )
            )
            if existing:
                return await self.count(conversation)
        last = await self._session.scalar(
            select(func.max(Turn.seq)).where(Turn.conversation_id == conversation.id)
        )
        seq = (last or 0) + 1
        for offset, turn in enumerate(turns):
            self._session.add(
                Turn(
                    conversation_id=conversation.id,
                    seq=seq + offset,
                    role=turn.role,
                    content=turn.content,
                    tokens=turn.tokens,
                    request_id=request_id or None,
                    created_at=now,
                    embedding=turn.embedding,
                )
            )
        conversation.updated_at = now
        await self._session.flush()
        return await self.count(conversation)

    async def count(self, conversation: Conversation) -> int:
        return int(
            await self._session.scalar(
                select(func.count()).where(Turn.conversation_id == conversation.id)
            )
            or 0
        )

    async def reset(self, conversation: Conversation, *, now: datetime) -> None:
        conversation.reset_at = now
        conversation.summary = None
        conversation.summary_upto_seq = None
        conversation.updated_at = now
        await self._session.flush()

    async def delete(self, conversation: Conversation) -> int:
        """Erase the conversation with its turns, summary and embeddings."""
        removed = await self.count(conversation)
        await self._session.execute(delete(Turn).where(Turn.conversation_id == conversation.id))
        await self._session.execute(delete(Conversation).where(Conversation.id == conversation.id))
        return removed
