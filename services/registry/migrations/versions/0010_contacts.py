"""a resident's language and opt-out of optional messages (issue 11)

Revision ID: 0010_contacts
Revises: 0005_authz
Create Date: 2026-12-06 04:30:00.000000

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010_contacts"
down_revision: Union[str, Sequence[str], None] = "0005_authz"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.add_column(
            sa.Column("language", sa.String(5), nullable=False, server_default="zh-CN")
        )
        batch.add_column(
            sa.Column("opted_out", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("opted_out")
        batch.drop_column("language")
