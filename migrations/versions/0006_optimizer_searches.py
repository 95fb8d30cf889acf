"""Optimizer: searches, evaluated candidates and fronts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (optimizer section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("algorithm", sa.String(), nullable=False),
        sa.Column("space", sa.String(), nullable=False),
        sa.Column("objectives", sa.Text(), nullable=False),
        sa.Column("workload", sa.Text(), nullable=False),
        sa.Column("workload_key", sa.String(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("generations", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_searches"),
    )
    op.create_index("ix_searches_workload_key", "searches", ["workload_key"])
    op.create_table(
        "search_evaluations",
        sa.Column("workload_key", sa.String(), nullable=False),
        sa.Column("config_hash", sa.String(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("evaluated_by", sa.String(), nullable=False),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workload_key", "config_hash", name="pk_search_evaluations"),
    )
    op.create_table(
        "search_points",
        sa.Column("search_id", sa.String(), nullable=False),
        sa.Column("config_hash", sa.String(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("on_front", sa.Integer(), nullable=False),
        sa.Column("preset", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["searches.id"],
            name="fk_search_points_search_id_searches",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("search_id", "config_hash", name="pk_search_points"),
    )


def downgrade() -> None:
    op.drop_table("search_points")
    op.drop_table("search_evaluations")
    op.drop_index("ix_searches_workload_key", table_name="searches")
    op.drop_table("searches")
