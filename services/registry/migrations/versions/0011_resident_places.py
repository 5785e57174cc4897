"""residents in place order with their households: zone population by index alone (issue 12)

Revision ID: 0011_resident_places
Revises: 0010_contacts
Create Date: 2026-12-06 10:45:00.000000

"""

from typing import Sequence, Union

from alembic import op

revision: str = "0011_resident_places"
down_revision: Union[str, Sequence[str], None] = "0010_contacts"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index(
        "ix_residents_place_household",
        "residents",
        ["compound_id", "building_id", "unit_id", "household_id"],
        postgresql_include=["town_id", "committee_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_residents_place_household", table_name="residents")
