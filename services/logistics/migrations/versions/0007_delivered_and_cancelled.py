"""issues name the household delivered to; what a household turned back; a plan can be
cancelled

Revision ID: 0007_delivered_and_cancelled
Revises: 0006_logistics_merged
Create Date: 2026-12-06 07:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "0007_delivered_and_cancelled"
down_revision: str | Sequence[str] | None = "0006_logistics_merged"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stock_entries") as batch:
        batch.add_column(sa.Column("to_household_id", sa.Uuid(), nullable=True))
    with op.batch_alter_table("distribution_deliveries") as batch:
        batch.add_column(sa.Column("rejected", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("distribution_plans") as batch:
        batch.add_column(
            sa.Column("cancelled_at", shared.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("cancelled_by", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("distribution_deliveries") as batch:
        batch.drop_column("rejected")
    with op.batch_alter_table("distribution_plans") as batch:
        batch.drop_column("cancel_reason")
        batch.drop_column("cancelled_by")
        batch.drop_column("cancelled_at")
    with op.batch_alter_table("stock_entries") as batch:
        batch.drop_column("to_household_id")
