"""a help request's kind is a glossary variable (request_kind) in the towns' own templates

The versions a town wrote of the templates its request rules fill declared it a plain str,
which shows the code (medicine_run) in a Chinese text.

Revision ID: 0004_request_kind_variables
Revises: 0003_messaging
Create Date: 2026-12-06 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_request_kind_variables"
down_revision: str | Sequence[str] | None = "0003_messaging"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The rules that fill ``request`` with a request's kind, each with its built-in template.
REQUEST_RULES = {
    "request_assigned": "request_assigned",
    "request_done": "request_done",
    "request_overdue": "request_overdue",
}
templates = sa.table(
    "templates",
    sa.column("id", sa.Uuid()),
    sa.column("town_id", sa.Uuid()),
    sa.column("key", sa.String()),
    sa.column("variables", sa.JSON()),
)
rule_settings = sa.table(
    "rule_settings",
    sa.column("town_id", sa.Uuid()),
    sa.column("rule", sa.String()),
    sa.column("template_key", sa.String()),
)


def _retype(before: str, after: str) -> None:
    """Retype ``request`` in every version of a template a request rule of its town fills
    (its built-in one, or the one the town gave the rule); the texts stay as they were."""
    bind = op.get_bind()
    chosen = {
        (town_id, rule): key
        for town_id, rule, key in bind.execute(
            sa.select(rule_settings.c.town_id, rule_settings.c.rule, rule_settings.c.template_key)
        )
        if rule in REQUEST_RULES and key
    }
    rows = bind.execute(
        sa.select(templates.c.id, templates.c.town_id, templates.c.key, templates.c.variables)
    ).all()
    for row in rows:
        filled = {chosen.get((row.town_id, rule), key) for rule, key in REQUEST_RULES.items()}
        if row.key in filled and row.variables.get("request") == before:
            bind.execute(
                sa.update(templates)
                .where(templates.c.id == row.id)
                .values(variables={**row.variables, "request": after})
            )


def upgrade() -> None:
    _retype("str", "request_kind")


def downgrade() -> None:
    _retype("request_kind", "str")
