"""Scheduler: jobs, predictions and executors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (scheduler section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_TIMESTAMP = sa.DateTime(timezone=True)
_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_INDEXES = {
    "ix_scheduler_jobs_state_pool": ("scheduler_jobs", ["state", "pool"]),
    "ix_scheduler_jobs_owner": ("scheduler_jobs", ["owner"]),
    "ix_scheduler_predictions_job_id": ("scheduler_predictions", ["job_id"]),
    "ix_scheduler_executors_pool": ("scheduler_executors", ["pool"]),
}


def upgrade() -> None:
    op.create_table(
        "scheduler_jobs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("pool", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("demand", sa.Integer(), nullable=False),
        sa.Column("size", sa.Float(), nullable=False),
        sa.Column("size_uncertainty", sa.Float(), nullable=False),
        sa.Column("size_estimated", sa.Boolean(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("class_index", sa.Integer(), nullable=False),
        sa.Column("tag_start", sa.Float(), nullable=False),
        sa.Column("tag_finish", sa.Float(), nullable=False),
        sa.Column("submitted_at", _TIMESTAMP, nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=True),
        sa.Column("run_started_at", _TIMESTAMP, nullable=True),
        sa.Column("completed_at", _TIMESTAMP, nullable=True),
        sa.Column("attained", sa.Float(), nullable=False),
        sa.Column("actual_size", sa.Float(), nullable=True),
        sa.Column("executor_id", sa.String(), nullable=False),
        sa.Column("gpu_indices", sa.String(), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("predicted_start", _TIMESTAMP, nullable=True),
        sa.Column("predicted_completion", _TIMESTAMP, nullable=True),
        sa.Column("predicted_at", _TIMESTAMP, nullable=True),
        sa.Column("prediction_reason", sa.String(), nullable=True),
        sa.Column("first_predicted_start", _TIMESTAMP, nullable=True),
        sa.Column("first_predicted_completion", _TIMESTAMP, nullable=True),
        sa.Column("first_predicted_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler_jobs"),
        sa.UniqueConstraint("seq", name="uq_scheduler_jobs_seq"),
        sa.UniqueConstraint("idempotency_key", name="uq_scheduler_jobs_idempotency_key"),
    )
    op.create_table(
        "scheduler_predictions",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("made_at", _TIMESTAMP, nullable=False),
        sa.Column("predicted_start", _TIMESTAMP, nullable=True),
        sa.Column("predicted_completion", _TIMESTAMP, nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["scheduler_jobs.id"],
            name="fk_scheduler_predictions_job_id_scheduler_jobs",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler_predictions"),
    )
    op.create_table(
        "scheduler_executors",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("pool", sa.String(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("alive", sa.Boolean(), nullable=False),
        sa.Column("registered_at", _TIMESTAMP, nullable=False),
        sa.Column("last_heartbeat", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler_executors"),
    )
    op.create_table(
        "scheduler_pool_configs",
        sa.Column("pool", sa.String(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.String(), nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("pool", name="pk_scheduler_pool_configs"),
    )
    for name, (table, columns) in _INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _) in _INDEXES.items():
        op.drop_index(name, table_name=table)
    op.drop_table("scheduler_pool_configs")
    op.drop_table("scheduler_executors")
    op.drop_table("scheduler_predictions")
    op.drop_table("scheduler_jobs")
