"""scheduled and urgent outbox rows, the effects ledger

Revision ID: 0009_effects
Revises: 0004
Create Date: 2026-12-06 01:00:00.000000

"""
from typing import Sequence, Union

from shared.migrations import add_effects_and_scheduling


# revision identifiers, used by Alembic.
revision: str = "0009_effects"
down_revision: Union[str, Sequence[str], None] = "0007_regfix"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    add_effects_and_scheduling()


def downgrade() -> None:
    """Downgrade schema."""
    add_effects_and_scheduling(undo=True)
