"""Database layer of the shared kernel: engines, the shared tables, migrations.

PostgreSQL (asyncpg) in deployment, SQLite (aiosqlite) in the embedded default; one
alembic chain (``migrations/`` at the repository root) serves both.
"""

from llmproxy.platform.db.engine import (
    create_engine,
    normalise_url,
    redacted_url,
    session_factory,
    wait_for_database,
)
from llmproxy.platform.db.idempotency import claim_event
from llmproxy.platform.db.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from llmproxy.platform.db.models import Base, Conversation, ProcessedEvent, Turn, UsageRecord
from llmproxy.platform.db.types import UtcDateTime

__all__ = [
    "Base",
    "Conversation",
    "ProcessedEvent",
    "Turn",
    "UsageRecord",
    "UtcDateTime",
    "alembic_config",
    "claim_event",
    "create_engine",
    "current_revision",
    "downgrade",
    "head_revision",
    "normalise_url",
    "redacted_url",
    "session_factory",
    "upgrade",
    "wait_for_database",
]
