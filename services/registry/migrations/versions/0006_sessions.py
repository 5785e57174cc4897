"""sessions: token version on users, refresh tokens

Revision ID: 0006_sessions
Revises: 0009_effects
Create Date: 2026-12-06 00:50:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import shared.db


# revision identifiers, used by Alembic.
revision: str = "0006_sessions"
down_revision: Union[str, Sequence[str], None] = "0008_order"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("sessions_ended_at", shared.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_users_sessions_ended_at"), ["sessions_ended_at"])

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("used_at", shared.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", shared.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_refresh_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refresh_tokens_family_id"), ["family_id"])
        batch_op.create_index(batch_op.f("ix_refresh_tokens_user_id"), ["user_id"])
        batch_op.create_index(batch_op.f("ix_refresh_tokens_expires_at"), ["expires_at"])
        batch_op.create_index(batch_op.f("ix_refresh_tokens_revoked_at"), ["revoked_at"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("refresh_tokens")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_sessions_ended_at"))
        batch_op.drop_column("sessions_ended_at")
        batch_op.drop_column("token_version")
