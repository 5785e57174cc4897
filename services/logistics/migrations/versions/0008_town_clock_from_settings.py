"""the town's clock is the deployment's (Settings.time_zone): no time zone per town

Revision ID: 0008_town_clock_from_settings
Revises: 0007_delivered_and_cancelled
Create Date: 2026-12-06 07:50:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_town_clock_from_settings"
down_revision: str | Sequence[str] | None = "0007_delivered_and_cancelled"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("disinfection_defaults", "request_settings")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("timezone")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "timezone",
                    sa.String(length=40),
                    nullable=False,
                    server_default="Asia/Shanghai",
                )
            )
