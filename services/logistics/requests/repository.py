"""Named queries of help requests: Core statements on the lean paths (create, overdue), the
caller's scope applied by the session hook on every one."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased

from services.logistics.models import HelpRequest, RequestSettings, directory
from shared.authz import UNSCOPED, own_rows
from shared.bulk import among
from shared.db import AnySelect, table_of
from shared.pagination import fetch_page, where_given
from shared.problems import NotFound
from shared.uow import UnitOfWork

Resident = directory.models.Resident
Household = directory.models.Household
Place = directory.models.Place
Person = directory.models.Person
Assignment = directory.models.Assignment
GridBuilding = directory.models.GridBuilding
requests = table_of(HelpRequest)
residents = table_of(Resident)
# A new request, every column given (built once per process).
INSERT_REQUEST = requests.insert()
# Errands a volunteer still has to run: what "least loaded" counts.
ACTIVE = ("assigned", "in_progress")
OPEN = ("open", "assigned", "in_progress")


@dataclass(frozen=True)
class Targets:
    """A town's service-time targets, in minutes."""

    urgent: int
    high: int
    normal: int


@dataclass(frozen=True)
class Who:
    name: str
    phone: str | None
    building: str
    unit: str | None
    household: str | None
    room: str | None


@dataclass(frozen=True)
class Subject:
    """A resident as a new request needs them: place, tags, how to find them, and their
    town's targets."""

    id: uuid.UUID
    household_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    town_id: uuid.UUID
    committee_id: uuid.UUID | None
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    tags: list[str]
    who: Who
    targets: Targets


def _defaults() -> dict[str, Any]:
    return {
        column.key: column.default.arg  # type: ignore[attr-defined]
        for column in table_of(RequestSettings).columns
        if column.default is not None
    }


DEFAULTS = _defaults()
DEFAULT_TARGETS = Targets(
    DEFAULTS["urgent_minutes"], DEFAULTS["high_minutes"], DEFAULTS["normal_minutes"]
)
_building, _unit = aliased(Place), aliased(Place)
_places, _households, _settings = table_of(Place), table_of(Household), table_of(RequestSettings)
_r = residents.c


def _of(table: Any, column: str, key: Any) -> Any:
    """A column of the row whose id is ``key``, or null when there is none the caller sees:
    the scope applies to the subquery's own table (``shared.authz`` scopes every SELECT of a
    Core statement), as it applies to an outer join's ``ON`` in the ORM."""
    return select(table.c[column]).where(table.c.id == key).scalar_subquery()


# The resident with their address and their town's targets: one statement on the create path,
# built once per process (Core, the resident's id a parameter), so the scope filter rewrites
# it once per caller's scope and SQLAlchemy finds it in its cache by a memoized key.
_SUBJECT_COLUMNS = (
    _r.id,
    _r.household_id,
    _r.unit_id,
    _r.town_id,
    _r.committee_id,
    _r.compound_id,
    _r.building_id,
    _r.tags,
    _r.name,
    _r.phone,
    _of(_places, "code", _r.building_id),
    _of(_places, "code", _r.unit_id),
    _of(_households, "code", _r.household_id),
    _of(_households, "room", _r.household_id),
    _of(_settings, "urgent_minutes", _r.town_id),
    _of(_settings, "high_minutes", _r.town_id),
    _of(_settings, "normal_minutes", _r.town_id),
)


@cache
def _subjects_query(dialect: str) -> Any:
    return select(*_SUBJECT_COLUMNS).where(among(_r.id, "ids", dialect=dialect))


def missing(resident_id: uuid.UUID, *, field: str) -> NotFound:
    return NotFound.on(field, f"no resident {resident_id} in your scope")


def _subject(row: Any) -> Subject:
    (id_, household, unit, town, committee, compound, building, tags, name, phone) = row[:10]
    who = Who(name, phone, row[10] or "?", row[11], row[12], row[13])
    targets = DEFAULT_TARGETS if row[14] is None else Targets(row[14], row[15], row[16])
    return Subject(
        id_, household, unit, town, committee, compound, building, list(tags or ()), who, targets
    )


async def subject(uow: UnitOfWork, resident_id: uuid.UUID, *, field: str) -> Subject:
    """The resident as the directory has them, or 404 naming the field."""
    found = (await subjects(uow, [resident_id])).get(resident_id)
    if found is None:
        raise missing(resident_id, field=field)
    return found


async def subjects(uow: UnitOfWork, resident_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Subject]:
    """The residents the caller sees among these, with their address and their town's
    targets: one statement, whatever their number."""
    rows = await uow.session.execute(_subjects_query(uow.dialect), {"ids": list(set(resident_ids))})
    return {row[0]: _subject(row) for row in rows.all()}


@cache
def _households_tags_query(dialect: str) -> Any:
    return select(_r.household_id, _r.tags).where(among(_r.household_id, "ids", dialect=dialect))


async def households_tags(
    uow: UnitOfWork, household_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, set[str]]:
    """The tags of each of these households' residents (one statement)."""
    found: dict[uuid.UUID, set[str]] = {}
    ids = list(set(household_ids))
    if ids:
        rows = await uow.session.execute(_households_tags_query(uow.dialect), {"ids": ids})
        for household, tags in rows.all():
            found.setdefault(household, set()).update(tags or ())
    return found


async def household_tags(uow: UnitOfWork, household_id: uuid.UUID | None) -> set[str]:
    if household_id is None:
        return set()
    return (await households_tags(uow, [household_id])).get(household_id, set())


async def settings_for(uow: UnitOfWork, town_id: uuid.UUID) -> RequestSettings:
    """The town's settings, or their defaults (an unsaved row)."""
    found = await uow.session.get(RequestSettings, town_id)
    if found is not None:
        return found
    return RequestSettings(id=town_id, town_id=town_id, **DEFAULTS)


def visible_to(uow: UnitOfWork) -> Any:
    """Beyond the scope: a volunteer sees only the errands given to them."""
    return own_rows(uow, HelpRequest.assignee_id)


async def locked(uow: UnitOfWork, request_id: uuid.UUID) -> HelpRequest:
    """The request, its row locked for a change (its events then get their positions in
    the order of its changes), or 404."""
    query = select(HelpRequest).where(HelpRequest.id == request_id).with_for_update()
    if (narrow := visible_to(uow)) is not None:
        query = query.where(narrow)
    found = await uow.session.scalar(query)
    if found is None:
        raise NotFound(f"no help request {request_id} in your scope")
    return found


async def who(uow: UnitOfWork, resident_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Who]:
    """Residents with their building, unit and room, for answers."""
    ids = list(set(resident_ids))
    if not ids:
        return {}
    query = (
        select(
            Resident.id,
            Resident.name,
            Resident.phone,
            _building.code,
            _unit.code,
            Household.code,
            Household.room,
        )
        .outerjoin(Household, Household.id == Resident.household_id)
        .outerjoin(_building, _building.id == Resident.building_id)
        .outerjoin(_unit, _unit.id == Resident.unit_id)
        .where(Resident.id.in_(ids))
    )
    return {
        row[0]: Who(row[1], row[2], row[3] or "?", row[4], row[5], row[6])
        for row in (await uow.session.execute(query)).all()
    }


async def grids_of(uow: UnitOfWork, building_id: uuid.UUID | None) -> list[uuid.UUID]:
    if building_id is None:
        return []
    query = select(GridBuilding.grid_id).where(GridBuilding.building_id == building_id)
    return sorted(set(await uow.session.scalars(query)))


async def _serving(uow: UnitOfWork, request: HelpRequest) -> Any:
    """Volunteers and their assignments (now) to the request's building, a grid covering it,
    or its whole compound: those whose buildings hold the errand."""
    grids = await grids_of(uow, request.building_id)
    via = {
        "building": Assignment.building_id == request.building_id,
        "grid": Assignment.grid_id.in_(grids) if grids else None,
        "compound": and_(
            Assignment.compound_id == request.compound_id,
            Assignment.building_id.is_(None),
            Assignment.grid_id.is_(None),
        ),
    }
    where = or_(*(condition for condition in via.values() if condition is not None))
    return (
        select(Person, Assignment.building_id, Assignment.grid_id)
        .join(Assignment, Assignment.person_id == Person.id)
        .where(
            Person.kind == "volunteer",
            Assignment.person_kind == "volunteer",
            Assignment.ended_at.is_(None),
            where,
        )
    )


async def serves(uow: UnitOfWork, request: HelpRequest, person_id: uuid.UUID) -> bool:
    """Whether the volunteer is assigned (now) where the request is: only then do they see
    the errand given to them."""
    query = (await _serving(uow, request)).where(Person.id == person_id).limit(1)
    return (await uow.session.execute(query)).first() is not None


async def candidates(uow: UnitOfWork, request: HelpRequest) -> list[tuple[Any, str]]:
    """Volunteers assigned (now) to the request's building, a grid covering it, or its whole
    compound, with how they are assigned there (the closest way first)."""
    query = await _serving(uow, request)
    found: dict[uuid.UUID, tuple[Any, str]] = {}
    rank = {"building": 0, "grid": 1, "compound": 2}
    for person, building_id, grid_id in (await uow.session.execute(query)).all():
        how = "building" if building_id == request.building_id and grid_id is None else None
        how = how or ("grid" if grid_id is not None else "compound")
        if person.id not in found or rank[how] < rank[found[person.id][1]]:
            found[person.id] = (person, how)
    return list(found.values())


async def open_errands(uow: UnitOfWork, person_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many errands each volunteer has still to run (any compound: an unscoped count,
    shown only as a number)."""
    if not person_ids:
        return {}
    r = requests.c
    query = (
        select(r.assignee_id, func.count())
        .where(r.assignee_id.in_(person_ids), r.status.in_(ACTIVE))
        .group_by(r.assignee_id)
    )
    rows = await uow.session.execute(query, execution_options=UNSCOPED)
    return {row[0]: int(row[1]) for row in rows.all()}


def late(now: datetime) -> Any:
    return HelpRequest.status.in_(OPEN) & (HelpRequest.due_at < now)


@dataclass(frozen=True)
class RequestFilters:
    """What a list of requests is narrowed to (each when given); ``overdue``: open and past
    the due time (or, false, not)."""

    status: str | None = None
    kind: str | None = None
    priority: str | None = None
    compound_id: uuid.UUID | None = None
    building_id: uuid.UUID | None = None
    resident_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    overdue: bool | None = None


async def requests_page(
    uow: UnitOfWork, *, filters: RequestFilters, now: datetime, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """The requests the caller sees (a volunteer: their own errands), narrowed."""
    query = where_given(
        select(HelpRequest),
        (HelpRequest.status, filters.status),
        (HelpRequest.kind, filters.kind),
        (HelpRequest.priority, filters.priority),
        (HelpRequest.compound_id, filters.compound_id),
        (HelpRequest.building_id, filters.building_id),
        (HelpRequest.resident_id, filters.resident_id),
        (HelpRequest.assignee_id, filters.assignee_id),
    )
    if filters.overdue is not None:
        query = query.where(late(now) if filters.overdue else ~late(now))
    return await page_visible(uow, query, cursor=cursor, limit=limit)


async def page_visible(
    uow: UnitOfWork, query: AnySelect, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """A page of requests, a volunteer's narrowed to their own errands."""
    if (narrow := visible_to(uow)) is not None:
        query = query.where(narrow)
    return await fetch_page(uow.session, query, HelpRequest.id, cursor=cursor, limit=limit)


async def counts_by_compound(uow: UnitOfWork, *, now: datetime) -> list[dict[str, Any]]:
    """Open and overdue requests per compound in one grouped query (the caller's scope applied
    by the session hook, a volunteer's narrowing added): the dashboard's figures."""
    query = (
        select(
            HelpRequest.compound_id,
            func.count().label("open"),
            func.count(case((HelpRequest.due_at < now, 1))).label("overdue"),
        )
        .where(HelpRequest.status.in_(OPEN))
        .group_by(HelpRequest.compound_id)
        .order_by(HelpRequest.compound_id)
    )
    if (narrow := visible_to(uow)) is not None:
        query = query.where(narrow)
    return [dict(row) for row in (await uow.session.execute(query)).mappings().all()]
