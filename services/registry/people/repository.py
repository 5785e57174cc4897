"""The people's lists (staff, volunteers, teams, assignments), each narrowed by the filters
the caller gave, on the scoped session."""

import uuid
from typing import Any

from sqlalchemy import select

from services.registry.models import (
    Assignment,
    PersonKind,
    Staff,
    Team,
    TeamKind,
    Volunteer,
    VolunteerKind,
)
from services.registry.people.service import with_skill
from shared.db import AnySelect
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork

Page = tuple[list[Any], str | None]


def _named(query: AnySelect, model: type[Staff | Volunteer], name: str | None) -> AnySelect:
    return query.where(model.name.contains(name, autoescape=True)) if name else query


async def staff_page(
    uow: UnitOfWork,
    *,
    committee_id: uuid.UUID | None,
    compound_id: uuid.UUID | None,
    name: str | None,
    cursor: str | None,
    limit: int,
) -> Page:
    query = where_given(
        select(Staff), (Staff.committee_id, committee_id), (Staff.compound_id, compound_id)
    )
    query = _named(query, Staff, name)
    return await fetch_page(uow.session, query, Staff.id, cursor=cursor, limit=limit)


async def volunteers_page(
    uow: UnitOfWork,
    *,
    committee_id: uuid.UUID | None,
    compound_id: uuid.UUID | None,
    kind: VolunteerKind | None,
    skill: str | None,
    name: str | None,
    cursor: str | None,
    limit: int,
) -> Page:
    query = where_given(
        select(Volunteer),
        (Volunteer.committee_id, committee_id),
        (Volunteer.compound_id, compound_id),
        (Volunteer.kind, kind),
    )
    if skill:
        query = with_skill(query, skill)
    query = _named(query, Volunteer, name)
    return await fetch_page(uow.session, query, Volunteer.id, cursor=cursor, limit=limit)


async def teams_page(
    uow: UnitOfWork,
    *,
    committee_id: uuid.UUID | None,
    compound_id: uuid.UUID | None,
    kind: TeamKind | None,
    cursor: str | None,
    limit: int,
) -> Page:
    query = where_given(
        select(Team),
        (Team.committee_id, committee_id),
        (Team.compound_id, compound_id),
        (Team.kind, kind),
    )
    return await fetch_page(uow.session, query, Team.id, cursor=cursor, limit=limit)


async def assignments_page(
    uow: UnitOfWork,
    *,
    person_id: uuid.UUID | None,
    person_kind: PersonKind | None,
    compound_id: uuid.UUID | None,
    grid_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> Page:
    query = where_given(
        select(Assignment),
        (Assignment.person_id, person_id),
        (Assignment.person_kind, person_kind),
        (Assignment.compound_id, compound_id),
        (Assignment.grid_id, grid_id),
        (Assignment.building_id, building_id),
    )
    return await fetch_page(uow.session, query, Assignment.id, cursor=cursor, limit=limit)
