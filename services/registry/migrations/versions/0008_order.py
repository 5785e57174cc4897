"""events in order: compounds remember their latest case; the outbox never reuses a position

Revision ID: 0008_order
Revises: 0009_effects
Create Date: 2026-12-06 00:41:55.914383

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import shared.db
from shared.migrations import outbox_positions_never_reused


# revision identifiers, used by Alembic.
revision: str = "0008_order"
down_revision: Union[str, Sequence[str], None] = "0009_effects"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    outbox_positions_never_reused()
    with op.batch_alter_table('compounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_case_at', shared.db.UtcDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    """Downgrade schema."""
    outbox_positions_never_reused(undo=True)
    with op.batch_alter_table('compounds', schema=None) as batch_op:
        batch_op.drop_column('last_case_at')

