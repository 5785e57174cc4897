"""index the directory's committee level, as the models declare (issue 9)

The directory's places and people carried ``committee_id`` from the start, but its index
(``Scoped.committee_id``, ``index=True``) was in no migration: a committee's staff read the
directory by that column.

Revision ID: 0008_directory_committee_index
Revises: 0007_contacts
Create Date: 2026-12-06 07:45:00.000000

"""

from typing import Sequence, Union

from alembic import op

revision: str = "0008_directory_committee_index"
down_revision: Union[str, Sequence[str], None] = "0007_contacts"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ("directory_places", "directory_people")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_committee_id", table, ["committee_id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_committee_id", table_name=table)
