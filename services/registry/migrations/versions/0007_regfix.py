"""households identified within their unit; zone changes from an inherited level

Revision ID: 0007_regfix
Revises: 0004
Create Date: 2026-12-06 01:00:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = "0007_regfix"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

WHOLE = sa.text("unit_id IS NULL")


def upgrade() -> None:
    """A household code is unique within its unit (or its building, without a unit)."""
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_constraint("uq_households_building_id_code", type_="unique")
        batch_op.create_unique_constraint(
            "uq_households_building_id_unit_id_code", ["building_id", "unit_id", "code"]
        )
        batch_op.create_index(
            "uq_households_building_whole",
            ["building_id", "code"],
            unique=True,
            postgresql_where=WHOLE,
            sqlite_where=WHOLE,
        )
    with op.batch_alter_table("zone_changes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("from_inherited", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    """Back to one code per building (fails if two units share a household code)."""
    with op.batch_alter_table("zone_changes", schema=None) as batch_op:
        batch_op.drop_column("from_inherited")
    with op.batch_alter_table("households", schema=None) as batch_op:
        batch_op.drop_index("uq_households_building_whole", postgresql_where=WHOLE, sqlite_where=WHOLE)
        batch_op.drop_constraint("uq_households_building_id_unit_id_code", type_="unique")
        batch_op.create_unique_constraint("uq_households_building_id_code", ["building_id", "code"])
