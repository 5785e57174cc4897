"""tube codes in upper case: a code is one tube whatever the case of its label

Codes now enter in upper case (``TubeCode``); a code stored before in lower or mixed case
would no longer be found by its own label. Each is upper-cased unless another tube's code
differs from it only by case (recorded as two tubes before codes were compared without
case): those are left as they are, and counted in a warning, for the town office to
resolve; upper-casing them would break the codes' uniqueness.

Revision ID: 0010_tube_codes_upper
Revises: 0009_member_indexes
Create Date: 2026-12-06 22:20:00.000000

"""

import logging
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010_tube_codes_upper"
down_revision: Union[str, Sequence[str], None] = "0009_member_indexes"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

log = logging.getLogger("alembic.runtime.migration")

# A code another tube holds in another case: upper-casing either would collide.
CLASHING = (
    "EXISTS (SELECT 1 FROM tubes AS other "
    "WHERE other.id <> tubes.id AND upper(other.code) = upper(tubes.code))"
)


def upgrade() -> None:
    op.execute(f"UPDATE tubes SET code = upper(code) WHERE code <> upper(code) AND NOT {CLASHING}")
    left = op.get_bind().scalar(
        sa.text(f"SELECT count(*) FROM tubes WHERE code <> upper(code) AND {CLASHING}")
    )
    if left:
        log.warning(
            "%d tube code(s) left in lower case: another tube holds the same code in "
            "another case (find them with upper(code) in the tubes table)",
            left,
        )


def downgrade() -> None:
    # Which codes were lower case is not kept: upper-cased codes stay as they are.
    pass
