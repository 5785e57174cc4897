"""Recipients: the shared directory (residents with phone, language and opt-out; staff and
volunteers with phone) read as contacts. It is the registry's projection, rebuilt by the
registry's re-sync, so nothing here keeps a copy of its own.

A contact whose phone cannot receive an SMS (none, a landline) is skipped and counted; an
opted-out resident is skipped and counted for optional messages only."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, select

from services.notify.models import (
    DirectoryAssignment,
    DirectoryPerson,
    DirectoryResident,
    DirectoryZone,
)
from shared.authz import Place
from shared.db import table_of
from shared.directory.zones import zone_level_of, zoned_apart
from shared.phones import can_receive_sms
from shared.uow import UnitOfWork

DEFAULT_LANGUAGE = "zh-CN"


@dataclass(frozen=True)
class Contact:
    kind: str  # resident, staff or volunteer
    id: uuid.UUID
    phone: str
    language: str
    place: Place


@dataclass
class Reach:
    """Who a message reaches, and who it skips and why."""

    contacts: list[Contact] = field(default_factory=list)
    no_phone: int = 0
    opted_out: int = 0

    def add(self, other: "Reach") -> None:
        self.contacts += other.contacts
        self.no_phone += other.no_phone
        self.opted_out += other.opted_out


def _sorted_out(rows: Iterable[Any], *, kind: str | None, optional: bool) -> Reach:
    reach = Reach()
    for row in rows:
        if optional and getattr(row, "opted_out", False):
            reach.opted_out += 1
        elif not can_receive_sms(row.phone):
            reach.no_phone += 1
        else:
            reach.contacts.append(
                Contact(
                    kind=kind or row.kind,
                    id=row.id,
                    phone=row.phone,
                    language=getattr(row, "language", None) or DEFAULT_LANGUAGE,
                    place=Place(row.town_id, row.committee_id, row.compound_id, row.building_id),
                )
            )
    return reach


async def residents(
    uow: UnitOfWork,
    where: ColumnElement[bool],
    *,
    optional: bool,
    after: uuid.UUID | None = None,
    limit: int | None = None,
) -> tuple[Reach, uuid.UUID | None]:
    """The residents matching ``where`` as contacts, in id order (after ``after``, at most
    ``limit`` of them), and the last id read (for the next batch)."""
    r = DirectoryResident
    query = select(
        r.id,
        r.phone,
        r.language,
        r.opted_out,
        r.town_id,
        r.committee_id,
        r.compound_id,
        r.building_id,
    ).where(where)
    if after is not None:
        query = query.where(r.id > after)
    query = query.order_by(r.id)
    if limit is not None:
        query = query.limit(limit)
    rows = (await uow.session.execute(query)).all()
    last = rows[-1].id if rows else None
    return _sorted_out(rows, kind="resident", optional=optional), last


async def people(uow: UnitOfWork, where: ColumnElement[bool]) -> Reach:
    """Staff and volunteers matching ``where`` (never optional: they are on duty)."""
    p = DirectoryPerson
    query = select(
        p.id, p.kind, p.phone, p.town_id, p.committee_id, p.compound_id, p.building_id
    ).where(where)
    return _sorted_out(
        (await uow.session.execute(query.order_by(p.id))).all(), kind=None, optional=False
    )


# ---- who: conditions on the directory ----


def in_area(*, building_id: uuid.UUID, unit_id: uuid.UUID | None) -> ColumnElement[bool]:
    r = DirectoryResident
    if unit_id is None:
        return r.building_id == building_id
    return and_(r.building_id == building_id, r.unit_id == unit_id)


def in_building_zone(
    building_id: uuid.UUID, *, apart: list[uuid.UUID] | None = None
) -> ColumnElement[bool]:
    """Residents of the building whose level is the building's: their unit has no zone of
    its own (a unit's own zone wins, ``shared/directory/zones.py``), so a change of the
    building's zone is a change of theirs. ``apart``: the units with their own zone, when
    the event names them; otherwise this service's copy of the zones says."""
    r = DirectoryResident
    if apart is None:
        zoned = zoned_apart(table_of(DirectoryZone), building_id=r.building_id, unit_id=r.unit_id)
    else:
        zoned = and_(r.unit_id.is_not(None), r.unit_id.in_(apart))
    return and_(r.building_id == building_id, ~zoned)


def with_ids(ids: Iterable[uuid.UUID]) -> ColumnElement[bool]:
    return DirectoryResident.id.in_(list(ids))


def in_town(town_id: uuid.UUID) -> ColumnElement[bool]:
    return DirectoryResident.town_id == town_id


def in_zone_level(level: str) -> ColumnElement[bool]:
    """Residents whose building, or unit, is at this level now."""
    r = DirectoryResident
    zone = zone_level_of(table_of(DirectoryZone), building_id=r.building_id, unit_id=r.unit_id)
    return zone == level


def tagged(tag: str) -> ColumnElement[bool]:
    """Residents with a tag (tags are identifiers, so their quoted JSON form is exact)."""
    return cast(DirectoryResident.tags, String).like(f'%"{tag}"%')


def staff_of_committee(committee_id: uuid.UUID | None) -> ColumnElement[bool]:
    p = DirectoryPerson
    return and_(p.kind == "staff", p.committee_id == committee_id)


def town_staff(town_id: uuid.UUID) -> ColumnElement[bool]:
    """The town office's own staff (placed at the town: no committee)."""
    p = DirectoryPerson
    return and_(p.kind == "staff", p.town_id == town_id, p.committee_id.is_(None))


def person(person_id: uuid.UUID) -> ColumnElement[bool]:
    return DirectoryPerson.id == person_id


def leading_grids(grid_ids: Iterable[uuid.UUID]) -> ColumnElement[bool]:
    """People with a current assignment to one of these grids."""
    a = DirectoryAssignment
    return DirectoryPerson.id.in_(
        select(a.person_id).where(a.grid_id.in_(list(grid_ids)), a.ended_at.is_(None))
    )


def leading_buildings_of(compound_id: uuid.UUID) -> ColumnElement[bool]:
    """People with a current assignment to a building of the compound: its building leaders."""
    a = DirectoryAssignment
    return DirectoryPerson.id.in_(
        select(a.person_id).where(
            a.compound_id == compound_id,
            a.building_id.is_not(None),
            a.grid_id.is_(None),
            a.ended_at.is_(None),
        )
    )
