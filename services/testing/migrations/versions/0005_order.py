"""events in order: the shared directory (positions, households, people, assignments, re-syncs, stream progress); the outbox never reuses a position

Revision ID: 0005_order
Revises: 0006_effects
Create Date: 2026-12-06 00:41:46.488170

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import shared.db
from shared.migrations import outbox_positions_never_reused


# revision identifiers, used by Alembic.
revision: str = "0005_order"
down_revision: Union[str, Sequence[str], None] = "0006_effects"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    outbox_positions_never_reused()
    op.create_table('directory_assignments',
    sa.Column('person_kind', sa.String(length=10), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('grid_id', sa.Uuid(), nullable=True),
    sa.Column('duty', sa.String(length=80), nullable=False),
    sa.Column('assigned_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('town_id', sa.Uuid(), nullable=False),
    sa.Column('compound_id', sa.Uuid(), nullable=True),
    sa.Column('building_id', sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_assignments'))
    )
    with op.batch_alter_table('directory_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_assignments_building_id'), ['building_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_assignments_compound_id'), ['compound_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_assignments_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_assignments_town_id'), ['town_id'], unique=False)

    op.create_table('directory_households',
    sa.Column('unit_id', sa.Uuid(), nullable=True),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('room', sa.String(length=40), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('town_id', sa.Uuid(), nullable=False),
    sa.Column('compound_id', sa.Uuid(), nullable=True),
    sa.Column('building_id', sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_households'))
    )
    with op.batch_alter_table('directory_households', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_households_building_id'), ['building_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_households_compound_id'), ['compound_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_households_town_id'), ['town_id'], unique=False)

    op.create_table('directory_people',
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('committee_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('title', sa.String(length=80), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('town_id', sa.Uuid(), nullable=False),
    sa.Column('compound_id', sa.Uuid(), nullable=True),
    sa.Column('building_id', sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_people'))
    )
    with op.batch_alter_table('directory_people', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_people_building_id'), ['building_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_people_compound_id'), ['compound_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_people_town_id'), ['town_id'], unique=False)

    op.create_table('directory_snapshots',
    sa.Column('resync_id', sa.Uuid(), nullable=False),
    sa.Column('town_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('completed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('resync_id', 'town_id', name=op.f('pk_directory_snapshots'))
    )
    with op.batch_alter_table('directory_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_snapshots_town_id'), ['town_id'], unique=False)

    op.create_table('directory_streams',
    sa.Column('stream', sa.String(length=40), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('event_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('applied_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('stream', name=op.f('pk_directory_streams'))
    )
    with op.batch_alter_table('directory_places', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.BigInteger(), server_default='0', nullable=False))

    with op.batch_alter_table('directory_residents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.BigInteger(), server_default='0', nullable=False))

    with op.batch_alter_table('directory_zones', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.alter_column('level',
               existing_type=sa.VARCHAR(length=12),
               nullable=True)



def downgrade() -> None:
    """Downgrade schema."""
    outbox_positions_never_reused(undo=True)
    with op.batch_alter_table('directory_zones', schema=None) as batch_op:
        batch_op.alter_column('level',
               existing_type=sa.VARCHAR(length=12),
               nullable=False)
        batch_op.drop_column('position')

    with op.batch_alter_table('directory_residents', schema=None) as batch_op:
        batch_op.drop_column('position')

    with op.batch_alter_table('directory_places', schema=None) as batch_op:
        batch_op.drop_column('position')

    op.drop_table('directory_streams')
    with op.batch_alter_table('directory_snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_snapshots_town_id'))

    op.drop_table('directory_snapshots')
    with op.batch_alter_table('directory_people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_people_town_id'))
        batch_op.drop_index(batch_op.f('ix_directory_people_compound_id'))
        batch_op.drop_index(batch_op.f('ix_directory_people_building_id'))

    op.drop_table('directory_people')
    with op.batch_alter_table('directory_households', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_households_town_id'))
        batch_op.drop_index(batch_op.f('ix_directory_households_compound_id'))
        batch_op.drop_index(batch_op.f('ix_directory_households_building_id'))

    op.drop_table('directory_households')
    with op.batch_alter_table('directory_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_assignments_town_id'))
        batch_op.drop_index(batch_op.f('ix_directory_assignments_person_id'))
        batch_op.drop_index(batch_op.f('ix_directory_assignments_compound_id'))
        batch_op.drop_index(batch_op.f('ix_directory_assignments_building_id'))

    op.drop_table('directory_assignments')
