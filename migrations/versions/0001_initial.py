"""Initial schema: processed events, usage records, conversations and turns.

Revision ID: 0001
Revises:
Create Date: 2025-11-22

Written by hand against ``llmproxy.platform.db.models`` (the test suite checks that the
two agree on PostgreSQL and SQLite). Constraint names follow the models' naming
convention, spelled out here so this file never depends on the models' current state.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        _timestamp("processed_at"),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    )

    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=True),
        sa.Column("app_id", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("conversation_id", sa.String(), nullable=True),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("reference_cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("saved_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("cache_outcome", sa.String(), nullable=False),
        sa.Column("context_strategy", sa.String(), nullable=False),
        sa.Column("tokens_sent", sa.Integer(), nullable=False),
        sa.Column("tokens_full_history", sa.Integer(), nullable=False),
        sa.Column("error", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_usage_records"),
        sa.UniqueConstraint("event_id", name="uq_usage_records_event_id"),
    )
    op.create_index("ix_usage_records_request_id", "usage_records", ["request_id"])
    op.create_index(
        "ix_usage_records_tenant_id_created_at", "usage_records", ["tenant_id", "created_at"]
    )

    op.create_table(
        "conversations",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("app_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("reset_at", nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("summary_upto_seq", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
    )
    op.create_index("ix_conversations_tenant_id", "conversations", ["tenant_id"])

    op.create_table(
        "turns",
        # SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGSERIAL
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=True),
        _timestamp("created_at"),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_turns_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_turns_conversation_id_seq"),
        sa.UniqueConstraint(
            "conversation_id",
            "request_id",
            "role",
            name="uq_turns_conversation_id_request_id_role",
        ),
    )


def downgrade() -> None:
    # reverse order: turns reference conversations
    op.drop_table("turns")
    op.drop_index("ix_conversations_tenant_id", table_name="conversations")
    op.drop_table("conversations")
    op.drop_index("ix_usage_records_tenant_id_created_at", table_name="usage_records")
    op.drop_index("ix_usage_records_request_id", table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_table("processed_events")
