"""Gateway access control: tenants, apps, hashed API keys, usage limits and their counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Written by hand against ``llmproxy.platform.db.models`` (gateway section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("reference_model", sa.String(), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "apps",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_apps"),
        _tenant_fk("apps"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_apps_tenant_id_name"),
    )
    op.create_index("ix_apps_tenant_id", "apps", ["tenant_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("app_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("scopes", sa.String(), nullable=False),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        _tenant_fk("api_keys"),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_api_keys_app_id_apps", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_table(
        "usage_limits",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("app_id", sa.String(), nullable=True),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("window", sa.String(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_usage_limits"),
        _tenant_fk("usage_limits"),
    )
    op.create_index("ix_usage_limits_tenant_id", "usage_limits", ["tenant_id"])
    op.create_table(
        "limit_counters",
        sa.Column("limit_id", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        _timestamp("window_start"),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("limit_id", "subject", "window_start", name="pk_limit_counters"),
        sa.ForeignKeyConstraint(
            ["limit_id"],
            ["usage_limits.id"],
            name="fk_limit_counters_limit_id_usage_limits",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    # reverse order of the foreign keys
    op.drop_table("limit_counters")
    op.drop_index("ix_usage_limits_tenant_id", table_name="usage_limits")
    op.drop_table("usage_limits")
    op.drop_index("ix_api_keys_tenant_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_apps_tenant_id", table_name="apps")
    op.drop_table("apps")
    op.drop_table("tenants")
