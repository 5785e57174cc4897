"""committee level of the scope (issue 7)

Revision ID: 0003_authz
Revises: 0005_order
Create Date: 2026-12-06 01:00:00.000000

"""
from typing import Sequence, Union

from shared.migrations import add_committee_column

revision: str = "0003_authz"
down_revision: Union[str, Sequence[str], None] = "0005_order"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Every placed table but directory_places and directory_people, which had the column. Existing rounds stay
# placed at their town (visible town-wide, their counts scoped); new ones are placed at the
# place their scope has in common.
TABLES = [
    "directory_assignments",
    "directory_households",
    "directory_residents",
    "directory_zones",
    "rounds",
    "round_members",
    "sampling_sites",
    "tubes",
    "tube_members",
    "tasks",
    "result_uploads",
    "cases",
    "contacts",
    "antigen_reports",
    "compound_clocks",
    "policies",
]


def upgrade() -> None:
    add_committee_column(TABLES)


def downgrade() -> None:
    add_committee_column(TABLES, undo=True)
