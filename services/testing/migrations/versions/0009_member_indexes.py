"""round members: the missed list's order by compound, and the scope in the place index (issue 12)

Revision ID: 0009_member_indexes
Revises: 0008_directory_committee_index
Create Date: 2026-12-06 07:40:00.000000

"""

from typing import Sequence, Union

from alembic import op

revision: str = "0009_member_indexes"
down_revision: Union[str, Sequence[str], None] = "0008_directory_committee_index"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PLACE = ["round_id", "compound_id", "building_id", "unit_id"]


def upgrade() -> None:
    op.drop_index("ix_round_members_round_place", table_name="round_members")
    op.create_index(
        "ix_round_members_round_place",
        "round_members",
        PLACE,
        postgresql_include=["town_id", "committee_id"],
    )
    op.create_index(
        "ix_round_members_round_compound_resident",
        "round_members",
        ["round_id", "compound_id", "resident_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_round_members_round_compound_resident", table_name="round_members")
    op.drop_index("ix_round_members_round_place", table_name="round_members")
    op.create_index("ix_round_members_round_place", "round_members", PLACE)
