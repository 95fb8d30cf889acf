"""WhatsApp channel: users and messages.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (whatsapp section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGSERIAL
_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_INDEXES = {
    "ix_whatsapp_conversations_wa_id": ("whatsapp_conversations", ["wa_id"]),
    "ix_whatsapp_messages_state_seq": ("whatsapp_messages", ["state", "seq"]),
    "ix_whatsapp_messages_wa_id": ("whatsapp_messages", ["wa_id"]),
    "ix_whatsapp_outbound_inbound_seq": ("whatsapp_outbound", ["inbound_seq"]),
}


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "whatsapp_users",
        sa.Column("wa_id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=True),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("pinned_model", sa.String(), nullable=False),
        sa.Column("context_strategy", sa.String(), nullable=False),
        sa.Column("context_param", sa.Integer(), nullable=False),
        sa.Column("cache_enabled", sa.Boolean(), nullable=False),
        _timestamp("last_inbound_at", nullable=True),
        _timestamp("rate_window_start", nullable=True),
        sa.Column("rate_count", sa.Integer(), nullable=False),
        sa.Column("spend_day", sa.String(), nullable=False),
        sa.Column("spend_nanousd", sa.BigInteger(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("wa_id", name="pk_whatsapp_users"),
        sa.UniqueConstraint("user_id", name="uq_whatsapp_users_user_id"),
    )
    op.create_table(
        "whatsapp_conversations",
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("wa_id", sa.String(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_whatsapp_conversations"),
    )
    op.create_table(
        "whatsapp_messages",
        sa.Column("seq", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("wa_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _timestamp("sent_at"),
        _timestamp("received_at"),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _timestamp("next_attempt_at"),
        sa.Column("lease_owner", sa.String(), nullable=True),
        _timestamp("lease_until", nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("parts_sent", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_whatsapp_messages"),
        sa.UniqueConstraint("message_id", name="uq_whatsapp_messages_message_id"),
    )
    op.create_table(
        "whatsapp_outbound",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("inbound_seq", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        _timestamp("sent_at"),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_outbound"),
    )
    op.create_table(
        "whatsapp_statuses",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        _timestamp("at"),
        sa.Column("error", sa.String(), nullable=True),
        _timestamp("recorded_at"),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_statuses"),
        sa.UniqueConstraint("message_id", "status", name="uq_whatsapp_statuses_message_id_status"),
    )
    for name, (table, columns) in _INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _) in _INDEXES.items():
        op.drop_index(name, table_name=table)
    for table in (
        "whatsapp_statuses",
        "whatsapp_outbound",
        "whatsapp_messages",
        "whatsapp_conversations",
        "whatsapp_users",
    ):
        op.drop_table(table)
