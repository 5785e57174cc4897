"""stock and distribution, requests, disinfection: one head

Revision ID: 0006_logistics_merged
Revises: 0003_distribution, 0004_requests, 0005_disinfection
Create Date: 2026-12-06 05:30:00.000000

"""

from typing import Sequence, Union

revision: str = "0006_logistics_merged"
down_revision: Union[str, Sequence[str], None] = (
    "0003_distribution",
    "0004_requests",
    "0005_disinfection",
)
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """The three were built side by side; none depends on another's tables."""


def downgrade() -> None:
    pass
