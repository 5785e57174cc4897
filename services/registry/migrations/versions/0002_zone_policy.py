"""zone policy: downgrade clocks and proposals, per-town downgrade days, epidemic-free
eligibility, one whole-building zone per building

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 21:31:01.778953

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import shared.db


# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('zone_proposals',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('zone_id', sa.Uuid(), nullable=False),
    sa.Column('unit_id', sa.Uuid(), nullable=True),
    sa.Column('from_level', sa.String(length=12), nullable=False),
    sa.Column('to_level', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('proposed_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=80), nullable=True),
    sa.Column('decided_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('town_id', sa.Uuid(), nullable=False),
    sa.Column('compound_id', sa.Uuid(), nullable=True),
    sa.Column('building_id', sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_zone_proposals'))
    )
    with op.batch_alter_table('zone_proposals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_zone_proposals_building_id'), ['building_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_zone_proposals_compound_id'), ['compound_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_zone_proposals_town_id'), ['town_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_zone_proposals_zone_id'), ['zone_id'], unique=False)
        batch_op.create_index('uq_zone_proposals_pending', ['zone_id'], unique=True, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))

    with op.batch_alter_table('compounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('epidemic_free_eligible_since', shared.db.UtcDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('towns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('downgrade_after_days', sa.Integer(), server_default='7', nullable=False))

    # Existing zones start their clock at their latest level change.
    with op.batch_alter_table('zones', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_positive_at', shared.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('quiet_since', shared.db.UtcDateTime(timezone=True), nullable=True))
    op.execute("UPDATE zones SET quiet_since = since")
    with op.batch_alter_table('zones', schema=None) as batch_op:
        batch_op.alter_column('quiet_since', existing_type=shared.db.UtcDateTime(timezone=True), nullable=False)
        batch_op.create_index('uq_zones_building_whole', ['building_id'], unique=True, postgresql_where=sa.text('unit_id IS NULL'), sqlite_where=sa.text('unit_id IS NULL'))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('zones', schema=None) as batch_op:
        batch_op.drop_index('uq_zones_building_whole', postgresql_where=sa.text('unit_id IS NULL'), sqlite_where=sa.text('unit_id IS NULL'))
        batch_op.drop_column('quiet_since')
        batch_op.drop_column('last_positive_at')

    with op.batch_alter_table('towns', schema=None) as batch_op:
        batch_op.drop_column('downgrade_after_days')

    with op.batch_alter_table('compounds', schema=None) as batch_op:
        batch_op.drop_column('epidemic_free_eligible_since')

    with op.batch_alter_table('zone_proposals', schema=None) as batch_op:
        batch_op.drop_index('uq_zone_proposals_pending', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index(batch_op.f('ix_zone_proposals_zone_id'))
        batch_op.drop_index(batch_op.f('ix_zone_proposals_town_id'))
        batch_op.drop_index(batch_op.f('ix_zone_proposals_compound_id'))
        batch_op.drop_index(batch_op.f('ix_zone_proposals_building_id'))

    op.drop_table('zone_proposals')
