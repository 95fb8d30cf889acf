"""Gateway: open limit reservations, so a crashed gateway's holds expire.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (gateway section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limit_reservations",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_limit_reservations"),
    )
    op.create_index("ix_limit_reservations_expires_at", "limit_reservations", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_limit_reservations_expires_at", table_name="limit_reservations")
    op.drop_table("limit_reservations")
