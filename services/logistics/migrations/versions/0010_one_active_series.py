"""a resident has one active recurring request of a kind on the same weekdays at one time from
one first day

Revision ID: 0010_one_active_series
Revises: 0009_cancelled_households
Create Date: 2026-12-06 22:20:00.000000

"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_one_active_series"
down_revision: str | Sequence[str] | None = "0009_cancelled_households"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _keys_and_repeats() -> None:
    """Each series' weekdays as the index compares them; of the active series entered twice
    before this version (each of their trips made twice: the same days and time from the
    same first day), the first entered stays active and the later ones are stopped (the
    trips they made stay)."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, resident_id, kind, weekdays, at_time, starts_on, active "
            "FROM recurring_requests "
            "ORDER BY created_at, id"
        )
    ).all()
    seen: set[tuple[object, ...]] = set()
    for row_id, resident_id, kind, weekdays, at_time, starts_on, active in rows:
        days = json.loads(weekdays) if isinstance(weekdays, str) else weekdays
        key = ",".join(sorted(set(days), key=DAYS.index))
        series = (str(resident_id), kind, key, at_time, str(starts_on))
        repeat = bool(active) and series in seen
        if active:
            seen.add(series)
        bind.execute(
            sa.text(
                "UPDATE recurring_requests SET weekdays_key = :key"
                + (", active = :stopped" if repeat else "")
                + " WHERE id = :id"
            ),
            {"key": key, "id": row_id, **({"stopped": False} if repeat else {})},
        )


def upgrade() -> None:
    with op.batch_alter_table("recurring_requests") as batch:
        batch.add_column(sa.Column("weekdays_key", sa.String(length=27), nullable=True))
    _keys_and_repeats()
    with op.batch_alter_table("recurring_requests") as batch:
        batch.alter_column("weekdays_key", existing_type=sa.String(length=27), nullable=False)
    op.create_index(
        "uq_recurring_requests_active",
        "recurring_requests",
        ["resident_id", "kind", "weekdays_key", "at_time", "starts_on"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )


def downgrade() -> None:
    op.drop_index("uq_recurring_requests_active", table_name="recurring_requests")
    with op.batch_alter_table("recurring_requests") as batch:
        batch.drop_column("weekdays_key")
