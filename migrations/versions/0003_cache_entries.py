"""Response cache: persisted cache entries.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-24

Written by hand against ``llmproxy.platform.db.models`` (cache section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {
    "ix_cache_entries_tenant_id_app_id": ["tenant_id", "app_id"],
    "ix_cache_entries_tenant_id_conversation_id": ["tenant_id", "conversation_id"],
    "ix_cache_entries_request_id": ["request_id"],
    "ix_cache_entries_expires_at": ["expires_at"],
}


def upgrade() -> None:
    op.create_table(
        "cache_entries",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("app_id", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=True),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("tail", sa.String(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cache_entries"),
        sa.UniqueConstraint("key", name="uq_cache_entries_key"),
    )
    for name, columns in _INDEXES.items():
        op.create_index(name, "cache_entries", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="cache_entries")
    op.drop_table("cache_entries")
