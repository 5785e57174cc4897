"""the directory keeps residents' language and opt-out, volunteers' skills (issue 10, 11)

Revision ID: 0007_contacts
Revises: 0003_authz
Create Date: 2026-12-06 04:30:00.000000

"""

from typing import Sequence, Union

from shared.migrations import add_directory_contacts

revision: str = "0007_contacts"
down_revision: Union[str, Sequence[str], None] = "0003_authz"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    add_directory_contacts()


def downgrade() -> None:
    add_directory_contacts(undo=True)
