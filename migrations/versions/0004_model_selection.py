"""Model selection: model profiles and router policies.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (model selection section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_profiles",
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanousd_total", sa.BigInteger(), nullable=False),
        sa.Column("ttft_histogram", sa.Text(), nullable=False),
        sa.Column("time_per_output_token_histogram", sa.Text(), nullable=False),
        sa.Column("latency_histogram", sa.Text(), nullable=False),
        sa.Column("feedback", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", name="pk_model_profiles"),
    )
    op.create_table(
        "profiled_requests",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("task_category", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_profiled_requests"),
    )
    op.create_index("ix_profiled_requests_created_at", "profiled_requests", ["created_at"])
    op.create_table(
        "router_policies",
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("candidate_models", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("embedding_model", sa.String(), nullable=False),
        sa.Column("trained_on", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("version", name="pk_router_policies"),
    )
    op.create_index("ix_router_policies_active", "router_policies", ["active"])


def downgrade() -> None:
    op.drop_index("ix_router_policies_active", table_name="router_policies")
    op.drop_table("router_policies")
    op.drop_index("ix_profiled_requests_created_at", table_name="profiled_requests")
    op.drop_table("profiled_requests")
    op.drop_table("model_profiles")
