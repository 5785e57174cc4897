"""Named queries of disinfection: the town's defaults, places and zones from the directory,
schedules to follow a zone or to make tasks from, tasks that are due."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from services.logistics.models import (
    DisinfectionDefaults,
    DisinfectionSchedule,
    DisinfectionTask,
    ScheduleReason,
    TaskStatus,
    directory,
)
from shared.db import AnySelect, table_of
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork

Place = directory.models.Place
Zone = directory.models.Zone
Person = directory.models.Person
Household = directory.models.Household


def default_defaults(town_id: uuid.UUID) -> DisinfectionDefaults:
    """The defaults of the table's columns, as an unsaved row (a town that set none)."""
    values = {
        column.key: column.default.arg  # type: ignore[attr-defined]
        for column in table_of(DisinfectionDefaults).columns
        if column.default is not None
    }
    return DisinfectionDefaults(id=town_id, town_id=town_id, **values)


async def defaults_for(uow: UnitOfWork, town_id: uuid.UUID) -> DisinfectionDefaults:
    found = await uow.session.get(DisinfectionDefaults, town_id)
    return found if found is not None else default_defaults(town_id)


async def defaults_of_towns(
    uow: UnitOfWork, town_ids: set[uuid.UUID]
) -> dict[uuid.UUID, DisinfectionDefaults]:
    query = select(DisinfectionDefaults).where(DisinfectionDefaults.id.in_(town_ids))
    found = {d.id: d for d in await uow.session.scalars(query)}
    return {town: found.get(town) or default_defaults(town) for town in town_ids}


async def zones_of_building(
    uow: UnitOfWork, building_id: uuid.UUID
) -> tuple[str | None, dict[uuid.UUID, str]]:
    """The building's own zone level and the levels its units hold of their own (a unit
    without one, or whose zone was lifted, has its building's)."""
    rows = (
        await uow.session.execute(
            select(Zone.unit_id, Zone.level).where(Zone.building_id == building_id)
        )
    ).all()
    building = next((level for unit, level in rows if unit is None), None)
    units = {unit: level for unit, level in rows if unit is not None and level is not None}
    return building, units


def schedules_of_building(building_id: uuid.UUID) -> AnySelect:
    """Every schedule of the building, locked: a zone, a case or staff change them one by
    one."""
    return (
        select(DisinfectionSchedule)
        .where(DisinfectionSchedule.building_id == building_id)
        .order_by(DisinfectionSchedule.id)
        .with_for_update()
    )


def active_schedules_of_town(town_id: uuid.UUID) -> AnySelect:
    return (
        select(DisinfectionSchedule)
        .where(DisinfectionSchedule.town_id == town_id, DisinfectionSchedule.active.is_(True))
        .order_by(DisinfectionSchedule.id)
        .with_for_update()
    )


def zoned_buildings() -> AnySelect:
    """Buildings whose schedules hold a zone level (or a sealing's schedule still runs)."""
    return (
        select(DisinfectionSchedule.building_id)
        .where(
            DisinfectionSchedule.building_id.is_not(None),
            or_(
                DisinfectionSchedule.zone_level.is_not(None),
                DisinfectionSchedule.active.is_(True)
                & (DisinfectionSchedule.reason == ScheduleReason.sealed.value),
            ),
        )
        .distinct()
    )


def schedule_by_key(auto_key: str) -> AnySelect:
    return (
        select(DisinfectionSchedule)
        .where(DisinfectionSchedule.auto_key == auto_key)
        .with_for_update()
    )


def schedules_needing_tasks(*, now: datetime) -> AnySelect:
    """Active schedules whose tasks were not made through the current town day. Locked, and
    those another replica holds skipped (it is making their tasks): a change of frequency
    waits for the tasks made from the old one, then removes those not yet due, and is never
    undone by a job that read the schedule before."""
    return (
        select(DisinfectionSchedule)
        .where(
            DisinfectionSchedule.active.is_(True),
            or_(
                DisinfectionSchedule.made_through.is_(None),
                DisinfectionSchedule.made_through <= now,
            ),
        )
        .order_by(DisinfectionSchedule.id)
        .with_for_update(skip_locked=True)
    )


def overdue_tasks(*, now: datetime, limit: int) -> AnySelect:
    """Pending tasks whose slot has passed; rows another replica is marking are skipped."""
    return (
        select(DisinfectionTask)
        .where(DisinfectionTask.status == TaskStatus.pending.value, DisinfectionTask.due_at <= now)
        .order_by(DisinfectionTask.due_at, DisinfectionTask.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def missed_tasks(*, compound_id: uuid.UUID | None, building_id: uuid.UUID | None) -> AnySelect:
    query = select(DisinfectionTask).where(DisinfectionTask.missed_at.is_not(None))
    if compound_id is not None:
        query = query.where(DisinfectionTask.compound_id == compound_id)
    if building_id is not None:
        query = query.where(DisinfectionTask.building_id == building_id)
    return query.order_by(
        DisinfectionTask.compound_id, DisinfectionTask.building_id, DisinfectionTask.slot_at
    )


async def schedules_page(
    uow: UnitOfWork,
    *,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    active: bool | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    query = where_given(
        select(DisinfectionSchedule),
        (DisinfectionSchedule.compound_id, compound_id),
        (DisinfectionSchedule.building_id, building_id),
        (DisinfectionSchedule.active, active),
    )
    return await fetch_page(uow.session, query, DisinfectionSchedule.id, cursor=cursor, limit=limit)


async def tasks_page(
    uow: UnitOfWork,
    *,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    schedule_id: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    query = where_given(
        select(DisinfectionTask),
        (DisinfectionTask.compound_id, compound_id),
        (DisinfectionTask.building_id, building_id),
        (DisinfectionTask.schedule_id, schedule_id),
        (DisinfectionTask.status, status),
    )
    return await fetch_page(uow.session, query, DisinfectionTask.id, cursor=cursor, limit=limit)
