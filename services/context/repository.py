"""Conversations and turns in the database (adapter: rows <-> plain records)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmproxy.context.strategies import TurnRecord
from llmproxy.platform.db.models import Conversation, Turn
from llmproxy.platform.embeddings import vector_from_bytes
from llmproxy.platform.errors import NotFoundError

__all__ = ["ConversationRepository", "NewTurn"]


@dataclass(frozen=True, slots=True)
class NewTurn:
    role: str
    content: str
    tokens: int
    #: float32 embedding bytes (see ``llmproxy.platform.embeddings.vector_to_bytes``)
    embedding: bytes | None = None


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
