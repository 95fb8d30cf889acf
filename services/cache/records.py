"""Translations of a cache :class:`Entry`: to and from its database row and its event form."""

from __future__ import annotations

from datetime import UTC

from llmproxy.cache.memory import Entry
from llmproxy.platform.db.models import CacheEntry
from llmproxy.platform.embeddings import MODEL_ID, vector_from_bytes, vector_to_bytes
from llmproxy.v1 import cache_pb2, common_pb2

__all__ = ["entry_from_record", "entry_from_row", "entry_to_record", "entry_to_row"]


def entry_to_row(entry: Entry) -> CacheEntry:
    return CacheEntry(
        id=entry.id,
        tenant_id=entry.tenant_id,
        app_id=entry.app_id,
        conversation_id=entry.conversation_id or None,
        scope=entry.scope,
        key=entry.key,
        prompt=entry.prompt,
        tail=entry.tail,
        answer=entry.answer,
        model=entry.model,
        input_tokens=entry.input_tokens,
        cached_input_tokens=entry.cached_input_tokens,
        output_tokens=entry.output_tokens,
        cost_nanousd=entry.cost_nanousd,
        request_id=entry.request_id,
        embedding=None if entry.embedding is None else vector_to_bytes(entry.embedding),
        embedding_model=None if entry.embedding is None else MODEL_ID,
        created_at=entry.created_at,
        expires_at=entry.expires_at,
    )


def entry_from_row(row: CacheEntry) -> Entry:
    # a vector of another embedding model is not comparable: keep the entry exact-only
    vector = vector_from_bytes(row.embedding) if row.embedding_model == MODEL_ID else None
    return Entry(
        id=row.id,
        tenant_id=row.tenant_id,
        app_id=row.app_id,
        conversation_id=row.conversation_id or "",
        scope=row.scope,
        key=row.key,
        prompt=row.prompt,
        tail=row.tail,
        answer=row.answer,
        model=row.model,
        input_tokens=row.input_tokens,
        cached_input_tokens=row.cached_input_tokens,
        output_tokens=row.output_tokens,
        cost_nanousd=row.cost_nanousd,
        request_id=row.request_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        embedding=vector,
    )


def entry_to_record(entry: Entry) -> cache_pb2.CacheEntryRecord:
    record = cache_pb2.CacheEntryRecord(
        entry_id=entry.id,
        tenant_id=entry.tenant_id,
        app_id=entry.app_id,
        conversation_id=entry.conversation_id,
        scope=entry.scope,
        key=entry.key,
        prompt=entry.prompt,
        tail=entry.tail,
        answer=entry.answer,
        model=entry.model,
        usage=common_pb2.TokenUsage(
            input_tokens=entry.input_tokens,
            cached_input_tokens=entry.cached_input_tokens,
            output_tokens=entry.output_tokens,
        ),
        cost_nanousd=entry.cost_nanousd,
        request_id=entry.request_id,
    )
    record.created_at.FromDatetime(entry.created_at)
    record.expires_at.FromDatetime(entry.expires_at)
    if entry.embedding is not None:
        record.embedding = vector_to_bytes(entry.embedding)
        record.embedding_model = MODEL_ID
    return record


def entry_from_record(record: cache_pb2.CacheEntryRecord) -> Entry:
    vector = vector_from_bytes(record.embedding) if record.embedding_model == MODEL_ID else None
    return Entry(
        id=record.entry_id,
        tenant_id=record.tenant_id,
        app_id=record.app_id,
        conversation_id=record.conversation_id,
        scope=record.scope,
        key=record.key,
        prompt=record.prompt,
        tail=record.tail,
        answer=record.answer,
        model=record.model,
        input_tokens=record.usage.input_tokens,
        cached_input_tokens=record.usage.cached_input_tokens,
        output_tokens=record.usage.output_tokens,
        cost_nanousd=record.cost_nanousd,
        request_id=record.request_id,
        created_at=record.created_at.ToDatetime(UTC),
        expires_at=record.expires_at.ToDatetime(UTC),
        embedding=vector,
    )
