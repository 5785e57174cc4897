"""Personal data: one presenter for every response that shows it.

Output schemas mark their personal fields once (``Annotated[str | None,
Personal(PersonalField.phone)]``) and subclass ``PersonalRecord`` (``HealthRecord`` for health
data: results, cases, contacts, tasks, antigen reports). An endpoint builds its answer in
clear and hands it to the ``Presenter`` (the ``Present`` dependency), which masks each marked
field by the caller's role and ``reveal`` request and writes one access-log row per read that
showed anything unmasked, in the request's transaction. Nothing else masks.

Who may reveal what is ``MAY_REVEAL``; docs/architecture.md shows it as a table.
"""

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Table

from shared.auth import Role
from shared.http import Uow
from shared.observability import correlation_id
from shared.problems import Forbidden
from shared.uow import UnitOfWork

T = TypeVar("T")


class PersonalField(StrEnum):
    id_number = "id_number"
    # Eight digits of an ID card number: shown with the number or not at all (see mask_birth_date).
    birth_date = "birth_date"
    phone = "phone"
    # Personal only on health data (``is_health``); elsewhere names are shown.
    name = "name"


_OFFICES = frozenset({Role.town_operator, Role.committee_staff})
# Who may ask to see a field unmasked. Leaders call residents, so they may see phones; only
# the offices that register people see ID numbers, and only they (and services) see who is
# concerned by health data.
MAY_REVEAL: dict[PersonalField, frozenset[Role]] = {
    PersonalField.id_number: _OFFICES,
    PersonalField.birth_date: _OFFICES,
    PersonalField.phone: _OFFICES | {Role.grid_leader, Role.building_leader, Role.service},
    PersonalField.name: _OFFICES | {Role.service},
}
HEALTH_READERS = MAY_REVEAL[PersonalField.name]
# A role that may reveal nothing at all sees no identity on health data, not even masked.
NO_IDENTITY_ON_HEALTH = frozenset(set(Role) - set().union(*MAY_REVEAL.values()))


def may_reveal(role: Role, field: PersonalField) -> bool:
    return role in MAY_REVEAL[field]


@dataclasses.dataclass(frozen=True)
class Personal:
    """Marks a field of an output schema as personal data of the given kind."""

    field: PersonalField


# The usual markings, for output schemas. A name is personal only on health data.
PersonalName = Annotated[str | None, Personal(PersonalField.name)]
PersonalPhone = Annotated[str | None, Personal(PersonalField.phone)]
PersonalIdNumber = Annotated[str | None, Personal(PersonalField.id_number)]


class PersonalRecord(BaseModel):
    """An output schema with ``Personal`` fields. ``resource`` and the field holding the
    record's id name what an unmasked read of it writes to the access log."""

    resource: ClassVar[str]
    record_id: ClassVar[str] = "id"
    health: ClassVar[bool] = False

    def is_health(self) -> bool:
        """Whether this record is health data (a schema may decide per record)."""
        return self.health


class HealthRecord(PersonalRecord):
    """Health data: revealing any identity on it needs a role in ``HEALTH_READERS``."""

    health: ClassVar[bool] = True


def mask_id_number(value: str | None) -> str | None:
    # Only the last four characters stay: enough to tell two namesakes apart at the door.
    # The head (region) and the middle (birth date) both go, because a resident's birth date
    # or home region shown beside them would otherwise fill the gap back in.
    if not value:
        return value
    keep = 4 if len(value) > 8 else 0
    return "*" * (len(value) - keep) + value[len(value) - keep :]


def mask_birth_date(value: date | None) -> None:
    # An 18-digit ID card number holds its owner's birth date: shown beside a masked number
    # it rebuilds the whole. Masked readers get ``birth_year`` (the age they need) instead.
    return None


def mask_phone(value: str | None) -> str | None:
    if not value:
        return value
    if len(value) <= 7:
        return "*" * len(value)
    return value[:-8] + "****" + value[-4:]


def mask_name(value: str | None) -> str | None:
    """The first character, then stars: enough for a list to stay readable."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)


MASKS: dict[PersonalField, Callable[[Any], Any]] = {
    PersonalField.id_number: mask_id_number,
    PersonalField.birth_date: mask_birth_date,
    PersonalField.phone: mask_phone,
    PersonalField.name: mask_name,
}


@functools.cache
def personal_fields(schema: type[BaseModel]) -> dict[str, PersonalField]:
    """The schema's own fields marked ``Personal``, by attribute name."""
    marked = {}
    for name, info in schema.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, Personal):
                marked[name] = meta.field
    return marked


def _records(out: Any) -> Iterator[PersonalRecord]:
    """Every personal record in an answer: a record, a page, a list, nested ones."""
    if isinstance(out, PersonalRecord):
        yield out
    if isinstance(out, BaseModel):
        for name in type(out).model_fields:
            yield from _records(getattr(out, name))
    elif isinstance(out, list | tuple):
        for item in out:
            yield from _records(item)


def _names(fields: Iterable[PersonalField]) -> str:
    return ", ".join(sorted(f.value.replace("_", " ") for f in fields))


class Presenter:
    """Masks personal fields by the caller's role and ``reveal`` request, and logs what it
    showed unmasked: one access-log row per read."""

    def __init__(self, uow: UnitOfWork, *, reveal: bool, endpoint: str) -> None:
        self.uow = uow
        self.reveal = reveal
        self.endpoint = endpoint

    @property
    def role(self) -> Role:
        return self.uow.principal.role

    def shown(self, fields: Iterable[PersonalField], *, health: bool) -> frozenset[PersonalField]:
        """Which of ``fields`` this read shows unmasked. Asking to reveal what the role may not
        see is refused (403) rather than silently masked."""
        wanted = frozenset(fields)
        if not self.reveal or not wanted:
            return frozenset()
        if health and self.role not in HEALTH_READERS:
            raise Forbidden(f"a {self.role.value} may not see who is concerned by health data")
        allowed = frozenset(f for f in wanted if may_reveal(self.role, f))
        if not allowed:
            raise Forbidden(f"a {self.role.value} may not see {_names(wanted)} unmasked")
        return allowed

    async def __call__(self, out: T) -> T:
        """The answer with its personal fields as the caller may see them (changed in place).
        A reveal is refused (403) only when the answer holds records and the role may reveal
        nothing in any of them: a list mixing health and other records reveals what it may."""
        logged: dict[str, tuple[set[PersonalField], list[str]]] = {}
        refused: Forbidden | None = None
        for record in _records(out):
            try:
                shown = self._mask(record)
            except Forbidden as exc:
                refused, shown = exc, self._mask(record, refused=True)
            if shown:
                fields, ids = logged.setdefault(record.resource, (set(), []))
                fields.update(shown)
                ids.append(str(getattr(record, record.record_id)))
        if refused is not None and not logged:
            raise refused
        for resource, (fields, ids) in logged.items():
            await self.log(resource=resource, record_ids=ids, fields=fields)
        return out

    def _mask(self, record: PersonalRecord, *, refused: bool = False) -> frozenset[PersonalField]:
        """Mask what the caller may not see of one record; the fields it shows in clear."""
        health = record.is_health()
        marked = {
            name: field
            for name, field in personal_fields(type(record)).items()
            if health or field is not PersonalField.name
        }
        shown = frozenset() if refused else self.shown(marked.values(), health=health)
        hidden = health and self.role in NO_IDENTITY_ON_HEALTH
        for name, field in marked.items():
            if field not in shown:
                value = getattr(record, name)
                setattr(record, name, None if hidden else MASKS[field](value))
        return shown

    def require(self, *fields: PersonalField, what: str) -> None:
        """Refuse (403) a read that can only be served unmasked (an export) to a role that
        may not reveal every one of ``fields``."""
        if not all(may_reveal(self.role, f) for f in fields):
            raise Forbidden(f"a {self.role.value} may not {what}: it shows {_names(fields)}")

    async def log(
        self, *, resource: str, record_ids: Iterable[object], fields: Iterable[PersonalField]
    ) -> None:
        """Record an unmasked read in the same transaction as the request."""
        ids = [str(i) for i in record_ids]
        if not ids:
            return
        table: Table = self.uow.access_log
        await self.uow.session.execute(
            table.insert().values(
                at=datetime.now(UTC),
                principal_id=self.uow.principal.id,
                role=self.role.value,
                resource=resource,
                record_ids=ids,
                fields=",".join(sorted(f.value for f in fields)),
                endpoint=self.endpoint,
                correlation_id=correlation_id.get(),
            )
        )


def searchable(uow: UnitOfWork, **parameters: tuple[object, PersonalField]) -> None:
    """Refuse (403, naming the parameter) a search by a fragment of a field the caller's role
    may not reveal: answers to "does a phone contain 1381?" spell a masked number out digit
    by digit."""
    role = uow.principal.role
    refused = [
        {"field": parameter, "message": f"a {role.value} may not search by {field.value}"}
        for parameter, (value, field) in parameters.items()
        if value is not None and value != "" and not may_reveal(role, field)
    ]
    if refused:
        raise Forbidden("; ".join(e["message"] for e in refused), errors=refused)


async def presenter(
    uow: Uow,
    request: Request,
    reveal: Annotated[
        bool,
        Query(
            description="Show personal data unmasked, as your role allows; every such read "
            "is logged"
        ),
    ] = False,
) -> Presenter:
    return Presenter(uow, reveal=reveal, endpoint=request.url.path)


# The dependency of every read that shows personal data; brings the ``reveal`` parameter.
Present = Annotated[Presenter, Depends(presenter)]
