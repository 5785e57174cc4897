"""a team's name is unique where it belongs (its compound, or its committee's own teams)

Revision ID: 0012_team_names
Revises: 0011_resident_places
Create Date: 2026-12-06 09:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_team_names"
down_revision: str | Sequence[str] | None = "0011_resident_places"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_LENGTH = 120


def _unique_names() -> None:
    """Names as the API now takes them (stripped; a blank one named after its kind), and a
    repeat where it belongs numbered (``Errands team (2)``), oldest first keeping its own."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, compound_id, committee_id, kind, name FROM teams ORDER BY id")
    ).all()
    taken: set[tuple[object, object, str]] = set()
    for team_id, compound_id, committee_id, kind, name in rows:
        where = (compound_id, None if compound_id is not None else committee_id)
        base = (name or "").strip() or f"{str(kind).capitalize()} team"
        wanted, n = base, 1
        while (*where, wanted) in taken:
            n += 1
            suffix = f" ({n})"
            wanted = base[: NAME_LENGTH - len(suffix)] + suffix
        taken.add((*where, wanted))
        if wanted != name:
            bind.execute(
                sa.text("UPDATE teams SET name = :name WHERE id = :id"),
                {"name": wanted, "id": team_id},
            )


def upgrade() -> None:
    _unique_names()
    op.create_index("uq_teams_compound_id_name", "teams", ["compound_id", "name"], unique=True)
    op.create_index(
        "uq_teams_committee_id_name",
        "teams",
        ["committee_id", "name"],
        unique=True,
        postgresql_where=sa.text("compound_id IS NULL"),
        sqlite_where=sa.text("compound_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_teams_committee_id_name", table_name="teams")
    op.drop_index("uq_teams_compound_id_name", table_name="teams")
