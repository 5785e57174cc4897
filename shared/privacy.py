"""Personal data: masking of ID and phone numbers by role, and the access log of every read
that showed them unmasked."""

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Query
from sqlalchemy import Table

from shared.auth import Role
from shared.observability import correlation_id
from shared.problems import Forbidden
from shared.uow import UnitOfWork


class PersonalField(StrEnum):
    id_number = "id_number"
    phone = "phone"
    health = "health"


# Who may ask to see a field unmasked. Leaders call residents, so they may see phones;
# only the offices that register people see their ID numbers.
MAY_REVEAL: dict[PersonalField, frozenset[Role]] = {
    PersonalField.id_number: frozenset({Role.town_operator, Role.committee_staff}),
    PersonalField.phone: frozenset(
        {
            Role.town_operator,
            Role.committee_staff,
            Role.grid_leader,
            Role.building_leader,
            Role.service,
        }
    ),
    PersonalField.health: frozenset({Role.town_operator, Role.committee_staff, Role.service}),
}


# The query parameter of every read that can show personal numbers.
Reveal = Annotated[
    bool,
    Query(description="Show ID and phone numbers unmasked, as your role allows; logged"),
]


def may_reveal(role: Role, field: PersonalField) -> bool:
    return role in MAY_REVEAL[field]


def revealed_fields(
    uow: UnitOfWork,
    *,
    reveal: bool,
    fields: Iterable[PersonalField] = (PersonalField.phone, PersonalField.id_number),
    what: str = "residents' numbers",
    health: bool = False,
) -> frozenset[PersonalField]:
    """Which of ``fields`` the caller asked to see unmasked and may; asking when the role
    may see none of them is refused rather than silently masked. With ``health`` the read is
    of health data (results, cases, contacts): it reveals names too, and only to roles that
    may see health data unmasked."""
    if not reveal:
        return frozenset()
    role = uow.principal.role
    if health and not may_reveal(role, PersonalField.health):
        raise Forbidden(f"a {role.value} may not see who is concerned by health data")
    wanted = (*fields, PersonalField.health) if health else tuple(fields)
    allowed = frozenset(f for f in wanted if may_reveal(role, f))
    if not allowed:
        raise Forbidden(f"a {role.value} may not see {what} unmasked")
    return allowed


def mask_id_number(value: str | None) -> str | None:
    if not value:
        return value
    if len(value) <= 6:
        return "*" * len(value)
    keep_head = 6 if len(value) >= 15 else 2
    return value[:keep_head] + "*" * (len(value) - keep_head - 4) + value[-4:]


def mask_name(value: str | None) -> str | None:
    """The first character, then stars: enough for a list to stay readable."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)


def mask_phone(value: str | None) -> str | None:
    if not value:
        return value
    if len(value) <= 7:
        return "*" * len(value)
    return value[:-8] + "****" + value[-4:]


async def log_access(
    uow: UnitOfWork,
    table: Table,
    *,
    resource: str,
    record_ids: Iterable[object],
    fields: Iterable[PersonalField],
    endpoint: str,
) -> None:
    """Record an unmasked read in the same transaction as the request."""
    ids = [str(i) for i in record_ids]
    if not ids:
        return
    await uow.session.execute(
        table.insert().values(
            at=datetime.now(UTC),
            principal_id=uow.principal.id,
            role=uow.principal.role.value,
            resource=resource,
            record_ids=ids,
            fields=",".join(sorted(f.value for f in fields)),
            endpoint=endpoint,
            correlation_id=correlation_id.get(),
        )
    )
