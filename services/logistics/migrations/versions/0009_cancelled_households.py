"""households not delivered by a cancelled plan are cancelled, no longer pending

Revision ID: 0009_cancelled_households
Revises: 0008_town_clock_from_settings
Create Date: 2026-12-06 09:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_cancelled_households"
down_revision: str | Sequence[str] | None = "0008_town_clock_from_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plans cancelled before this version left their households pending on every list.
    op.execute(
        "UPDATE distribution_allocations SET status = 'cancelled' "
        "WHERE status <> 'delivered' AND plan_id IN "
        "(SELECT id FROM distribution_plans WHERE cancelled_at IS NOT NULL)"
    )


def downgrade() -> None:
    # The earlier state (pending or tried without success) is told apart by the reason.
    op.execute(
        "UPDATE distribution_allocations SET status = CASE "
        "WHEN reason IS NULL OR reason = 'unit_sealed' THEN 'pending' ELSE 'undelivered' END "
        "WHERE status = 'cancelled'"
    )
