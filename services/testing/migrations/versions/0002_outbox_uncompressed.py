"""outbox bodies stored uncompressed

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 22:00:00.000000

"""
from typing import Sequence, Union

from shared.migrations import store_outbox_uncompressed


# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    store_outbox_uncompressed()


def downgrade() -> None:
    """Downgrade schema."""
    store_outbox_uncompressed(undo=True)
