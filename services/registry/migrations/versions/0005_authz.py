"""committee level of the scope (issue 7)

Revision ID: 0005_authz
Revises: 0009_effects
Create Date: 2026-12-06 01:00:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from shared.migrations import add_committee_column

revision: str = "0005_authz"
down_revision: Union[str, Sequence[str], None] = "0006_sessions"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Placed tables that had no committee column (staff, volunteers, teams, users and compounds
# had one already).
TABLES = [
    "towns",
    "committees",
    "gates",
    "buildings",
    "units",
    "grids",
    "grid_buildings",
    "households",
    "residents",
    "resident_moves",
    "team_members",
    "assignments",
    "zones",
    "zone_proposals",
    "zone_changes",
    "ledger_imports",
]


def upgrade() -> None:
    add_committee_column(TABLES)
    _place_town_grids_at_their_committee()


def _place_town_grids_at_their_committee() -> None:
    """A grid administered at the town whose buildings all lie in one committee belongs to
    that committee (it showed to every committee before), and so do assignments on it."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT g.id, c.committee_id FROM grids g"
            " JOIN grid_buildings gb ON gb.grid_id = g.id"
            " JOIN compounds c ON c.id = gb.compound_id WHERE g.compound_id IS NULL"
        )
    ).all()
    committees: dict[object, set[object]] = {}
    for grid_id, committee_id in rows:
        committees.setdefault(grid_id, set()).add(committee_id)
    for grid_id, found in committees.items():
        if len(found) == 1:
            params = {"grid": grid_id, "committee": next(iter(found))}
            bind.execute(
                sa.text("UPDATE grids SET committee_id = :committee WHERE id = :grid"), params
            )
            bind.execute(
                sa.text(
                    "UPDATE assignments SET committee_id = :committee"
                    " WHERE grid_id = :grid AND compound_id IS NULL"
                ),
                params,
            )


def downgrade() -> None:
    add_committee_column(TABLES, undo=True)
