"""Disinfection: schedules per target, tasks made from them slot by slot, completion records
and missed slots.

The rules:
- A schedule's frequency (``per_day``) is what staff set, or the town's default for its
  target (data: ``disinfection_defaults``), raised to the town's sealed frequency while its
  area is sealed. The area's zone is read from the directory after the directory applied a
  registry event (:func:`follow_zones`), so order and re-syncs are the directory's: an old
  zone event arriving late changes no level, hence no schedule. A sealed building or unit
  without a schedule gets one (reason ``sealed``), ended when the seal is lifted.
- A confirmed case (``testing.case.confirmed``) gives its household's stairwell (its unit;
  its building when it has none) a schedule at the town's stairwell frequency for the town's
  ``case_days``, and a task at once. Two cases of one stairwell keep the later end: the
  outcome does not depend on the order they arrive in.
- The town day's slots run from ``first_slot_hour`` to ``last_slot_hour`` in the town's time
  zone, evenly split: slot i is due when slot i + 1 starts. The periodic job makes the
  current day's tasks of every active schedule (slots due after the frequency began), once
  per (schedule, slot) whatever the number of replicas: the unique key decides, and only the
  rows inserted count. A change of frequency removes the pending tasks whose slot has not
  begun (the one under way stays); the next run makes the new slots.
- A slot passed without completion is marked missed by the same job (one replica wins each
  task: rows are claimed with ``SKIP LOCKED`` and updated while still pending) and published.
  A missed task may still be done, late; it stays listed among the missed.
"""

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete

from services.logistics.disinfection import repository as repo
from services.logistics.disinfection import schemas
from services.logistics.models import (
    DisinfectionDefaults,
    DisinfectionSchedule,
    DisinfectionTarget,
    DisinfectionTask,
    ScheduleReason,
    TaskStatus,
)
from shared.authz import FIELD, MANAGERS, Place, Role, policy
from shared.contracts import registry
from shared.contracts.logistics import (
    DisinfectionDone,
    DisinfectionMissed,
    DisinfectionScheduled,
)
from shared.contracts.testing import CaseConfirmed
from shared.db import insert_ignoring_duplicates, table_of
from shared.events import Event
from shared.problems import Conflict, Invalid, NotFound
from shared.uow import UnitOfWork

# Committee staff manage their compounds' schedules (town operators the town's).
MANAGE = policy("disinfection schedules", "manage", *MANAGERS)
# The disinfection team, field roles included, completes the tasks in its scope.
COMPLETE = policy("disinfection tasks", "complete", *FIELD)
# The town office sets its town's defaults.
SET_DEFAULTS = policy("disinfection defaults", "set", Role.town_operator, Role.service)
SEALED = "sealed"
# Targets that stand for a whole building or unit (not a lift or a stairwell in it).
WHOLE_AREAS = frozenset({DisinfectionTarget.building.value, DisinfectionTarget.unit.value})
# Overdue tasks marked missed per transaction of the job.
MISSED_BATCH = 1_000


# ---- defaults ----


async def read_defaults(uow: UnitOfWork, *, town_id: uuid.UUID) -> DisinfectionDefaults:
    if not uow.scope.allows(town_id=town_id):
        raise NotFound(f"no town {town_id} in your scope")
    return await repo.defaults_for(uow, town_id)


async def set_defaults(
    uow: UnitOfWork, *, town_id: uuid.UUID, data: schemas.DefaultsIn
) -> DisinfectionDefaults:
    """Set the town's defaults; schedules take them as their tasks are next made."""
    defaults = await read_defaults(uow, town_id=town_id)
    SET_DEFAULTS.check(uow, Place(town_id))
    for field, value in data.model_dump().items():
        setattr(defaults, field, value)
    uow.session.add(defaults)
    await uow.session.flush()
    await _refrequency(uow, town_id=town_id, defaults=defaults)
    return defaults


async def _refrequency(
    uow: UnitOfWork, *, town_id: uuid.UUID, defaults: DisinfectionDefaults
) -> None:
    """The town's schedules that take its defaults follow the new ones (published)."""
    now = datetime.now(UTC)
    for schedule in await uow.session.scalars(repo.active_schedules_of_town(town_id)):
        per_day = frequency(schedule, defaults, schedule.zone_level)
        if per_day != schedule.per_day:
            schedule.per_day = per_day
            await changed(uow, schedule, now=now, replan=True)


def base_frequency(schedule: DisinfectionSchedule, defaults: DisinfectionDefaults) -> int:
    if schedule.base_per_day is not None:
        return schedule.base_per_day
    return int(getattr(defaults, f"{schedule.target}_per_day"))


def frequency(
    schedule: DisinfectionSchedule, defaults: DisinfectionDefaults, zone_level: str | None
) -> int:
    """Times a day: the schedule's own, at least the town's sealed frequency while sealed."""
    base = base_frequency(schedule, defaults)
    return max(base, defaults.sealed_per_day) if zone_level == SEALED else base


# ---- slots ----


def town_day(
    defaults: DisinfectionDefaults, at: datetime, *, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """The first slot's start and the last slot's end of the town day holding ``at`` (the
    town office's clock, ``zone``)."""
    day = at.astimezone(zone).date()
    first = datetime.combine(day, time(defaults.first_slot_hour), zone)
    last = datetime.combine(day, time(0), zone) + timedelta(hours=defaults.last_slot_hour)
    return first.astimezone(UTC), last.astimezone(UTC)


def slot_length(defaults: DisinfectionDefaults, per_day: int) -> timedelta:
    return timedelta(hours=defaults.last_slot_hour - defaults.first_slot_hour) / per_day


def slots(
    defaults: DisinfectionDefaults, *, per_day: int, at: datetime, zone: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """The (start, due) of each slot of the town day holding ``at``."""
    first, _ = town_day(defaults, at, zone=zone)
    step = slot_length(defaults, per_day)
    return [(first + i * step, first + (i + 1) * step) for i in range(per_day)]


def day_end(at: datetime, *, zone: ZoneInfo) -> datetime:
    """Midnight after ``at``, town time: tasks are made through the whole town day."""
    tomorrow = at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), zone).astimezone(UTC)


# ---- schedules ----


def scheduled_event(schedule: DisinfectionSchedule) -> DisinfectionScheduled:
    assert schedule.compound_id is not None
    return DisinfectionScheduled(
        schedule_id=schedule.id,
        schedule_version=schedule.version,
        town_id=schedule.town_id,
        compound_id=schedule.compound_id,
        building_id=schedule.building_id,
        unit_id=schedule.unit_id,
        target=schedule.target,
        label=schedule.label,
        reason=schedule.reason,
        per_day=schedule.per_day,
        zone_level=schedule.zone_level,
        responsible_person_id=schedule.responsible_person_id,
        team=schedule.team,
        active=schedule.active,
        until=schedule.until,
    )


def publish(uow: UnitOfWork, schedule: DisinfectionSchedule) -> None:
    uow.emit(scheduled_event(schedule), compound_id=schedule.compound_id)


def plan_of(schedule: DisinfectionSchedule) -> tuple[int, bool]:
    """What the tasks are made from: a change of either replans them."""
    return schedule.per_day, schedule.active


async def changed(
    uow: UnitOfWork, schedule: DisinfectionSchedule, *, now: datetime, replan: bool
) -> None:
    """A schedule changed: its version rises and the change is published. When its frequency
    or state changed (``replan``), its pending tasks whose slot has not begun go and the
    next run of the job makes the new slots; the task of the slot under way stays (an area
    just sealed is not left without one)."""
    if replan:
        await uow.session.execute(
            delete(DisinfectionTask).where(
                DisinfectionTask.schedule_id == schedule.id,
                DisinfectionTask.status == TaskStatus.pending.value,
                DisinfectionTask.slot_at > now,
            )
        )
        schedule.slots_from = now
        schedule.made_through = None
    schedule.version += 1
    schedule.updated_at = now
    await uow.session.flush()
    publish(uow, schedule)


async def zone_level_of(
    uow: UnitOfWork, *, building_id: uuid.UUID | None, unit_id: uuid.UUID | None
) -> str | None:
    if building_id is None:
        return None
    building, units = await repo.zones_of_building(uow, building_id)
    return units.get(unit_id, building) if unit_id is not None else building


async def _place_of(uow: UnitOfWork, data: schemas.ScheduleCreate) -> tuple[Place, str]:
    """Where the schedule goes, from the directory (404 naming the field when the caller
    does not see it), and a label for it when staff gave none."""
    compound = await uow.get(
        repo.Place,
        data.compound_id,
        what="compound",
        field="compound_id",
        where=repo.Place.kind == "compound",
    )
    label = compound.name
    building_id = None
    if data.building_id is not None:
        building = await uow.get(
            repo.Place,
            data.building_id,
            what="building",
            field="building_id",
            where=repo.Place.kind == "building",
        )
        if building.compound_id != compound.id:
            raise Invalid.on("building_id", f"building {building.code} is not in {compound.name}")
        building_id, label = building.id, f"building {building.code}"
    if data.unit_id is not None:
        unit = await uow.get(
            repo.Place,
            data.unit_id,
            what="unit",
            field="unit_id",
            where=repo.Place.kind == "unit",
        )
        if unit.building_id != building_id:
            raise Invalid.on("unit_id", f"unit {unit.code} is not in the building given")
        label = f"{label}, unit {unit.code}"
    place = Place(compound.town_id, compound.committee_id, compound.id, building_id)
    return place, label


async def _check_person(uow: UnitOfWork, person_id: uuid.UUID | None, field: str) -> None:
    if person_id is not None:
        await uow.get(repo.Person, person_id, what="person", field=field)


async def create_schedule(
    uow: UnitOfWork, *, data: schemas.ScheduleCreate, now: datetime
) -> DisinfectionSchedule:
    place, label = await _place_of(uow, data)
    MANAGE.check(uow, place, field="compound_id")
    await _check_person(uow, data.responsible_person_id, "responsible_person_id")
    schedule = DisinfectionSchedule(
        **place.columns(),
        target=data.target.value,
        unit_id=data.unit_id,
        label=data.label or f"{data.target.value.replace('_', ' ')}, {label}",
        reason=ScheduleReason.manual.value,
        base_per_day=data.per_day,
        responsible_person_id=data.responsible_person_id,
        team=data.team,
        active=True,
        slots_from=now,
        version=1,
        created_at=now,
        updated_at=now,
    )
    defaults = await repo.defaults_for(uow, place.town_id)
    schedule.zone_level = await zone_level_of(
        uow, building_id=place.building_id, unit_id=data.unit_id
    )
    schedule.per_day = frequency(schedule, defaults, schedule.zone_level)
    uow.session.add(schedule)
    await uow.session.flush()
    publish(uow, schedule)
    return schedule


async def change_schedule(
    uow: UnitOfWork, *, schedule_id: uuid.UUID, data: schemas.ScheduleChange, now: datetime
) -> DisinfectionSchedule:
    schedule = await uow.get(DisinfectionSchedule, schedule_id, what="disinfection schedule")
    MANAGE.check(uow, Place.of(schedule))
    await uow.session.refresh(schedule, with_for_update=True)
    given = data.model_dump(exclude_unset=True)
    await _check_person(uow, given.get("responsible_person_id"), "responsible_person_id")
    before = plan_of(schedule)
    if "per_day" in given:
        schedule.base_per_day = given.pop("per_day")
    for field, value in given.items():
        if value is not None or field == "responsible_person_id":
            setattr(schedule, field, value)
    defaults = await repo.defaults_for(uow, schedule.town_id)
    schedule.per_day = frequency(schedule, defaults, schedule.zone_level)
    await changed(uow, schedule, now=now, replan=plan_of(schedule) != before)
    return schedule


# ---- following the zone ----


async def follow_zones(uow: UnitOfWork, event: Event) -> None:
    """After the directory applied a registry event: the schedules of every building whose
    zone it concerned follow the building's zones as the directory now holds them."""
    match event:
        case registry.ZoneChanged(building_id=building_id):
            buildings = {building_id}
        case registry.ZonesSnapshot(zones=zones):
            buildings = {z.building_id for z in zones}
        case registry.SnapshotCompleted():
            # A re-sync may have dropped zones gone from the registry: recheck every
            # building whose schedules still hold a zone.
            buildings = set(await uow.session.scalars(repo.zoned_buildings()))
        case _:
            return
    now = datetime.now(UTC)
    for building_id in sorted(buildings):
        await follow_building(uow, building_id=building_id, now=now)


async def follow_building(uow: UnitOfWork, *, building_id: uuid.UUID, now: datetime) -> None:
    building = await uow.session.get(repo.Place, building_id)
    if building is None:
        return
    own, units = await repo.zones_of_building(uow, building_id)
    # A sealed building's schedule covers its units; else each sealed unit has its own.
    sealed_areas = {building_id} if own == SEALED else set()
    if not sealed_areas:
        sealed_areas = {unit for unit, level in units.items() if level == SEALED}
    schedules = list(await uow.session.scalars(repo.schedules_of_building(building_id)))
    keys = {s.auto_key for s in schedules}
    # An area staff already schedule as a whole needs no second schedule: theirs rises.
    covered = {
        s.unit_id or s.building_id
        for s in schedules
        if s.active and s.reason == ScheduleReason.manual.value and s.target in WHOLE_AREAS
    }
    for area in sorted(sealed_areas - covered):
        if f"sealed:{area}" not in keys:
            schedules.append(await _sealed_schedule(uow, building, area=area, now=now))
    defaults = await repo.defaults_for(uow, building.town_id)
    for schedule in schedules:
        level = units.get(schedule.unit_id, own) if schedule.unit_id is not None else own
        await _follow(uow, schedule, defaults, level=level, sealed_areas=sealed_areas, now=now)


async def _sealed_schedule(
    uow: UnitOfWork, building: Any, *, area: uuid.UUID, now: datetime
) -> DisinfectionSchedule:
    """A sealed building or unit that had no schedule gets one (made inactive, so the
    follow-up activates and publishes it with its frequency)."""
    unit = None if area == building.id else await uow.session.get(repo.Place, area)
    label = f"sealed building {building.code}"
    if unit is not None:
        label = f"sealed unit {unit.code}, building {building.code}"
    schedule = DisinfectionSchedule(
        town_id=building.town_id,
        committee_id=building.committee_id,
        compound_id=building.compound_id,
        building_id=building.id,
        target=(DisinfectionTarget.unit if unit else DisinfectionTarget.building).value,
        unit_id=unit.id if unit else None,
        label=label,
        reason=ScheduleReason.sealed.value,
        auto_key=f"sealed:{area}",
        per_day=0,
        team="",
        active=False,
        slots_from=now,
        version=0,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(schedule)
    await uow.session.flush()
    return schedule


async def _follow(
    uow: UnitOfWork,
    schedule: DisinfectionSchedule,
    defaults: DisinfectionDefaults,
    *,
    level: str | None,
    sealed_areas: set[uuid.UUID],
    now: datetime,
) -> None:
    active = schedule.active
    if schedule.reason == ScheduleReason.sealed.value:
        # A sealing's own schedule lasts as long as the seal.
        active = (schedule.unit_id or schedule.building_id) in sealed_areas
    per_day = frequency(schedule, defaults, level)
    if (per_day, level, active) == (schedule.per_day, schedule.zone_level, schedule.active):
        return
    before = plan_of(schedule)
    schedule.per_day, schedule.zone_level, schedule.active = per_day, level, active
    await changed(uow, schedule, now=now, replan=plan_of(schedule) != before)


# ---- a confirmed case ----


async def on_case_confirmed(uow: UnitOfWork, event: CaseConfirmed) -> DisinfectionSchedule:
    """The case's household's stairwell gets a schedule for the town's ``case_days`` and a
    task at once."""
    area = event.unit_id or event.building_id
    defaults = await repo.defaults_for(uow, event.town_id)
    until = event.confirmed_at + timedelta(days=defaults.case_days)
    schedule = await uow.session.scalar(repo.schedule_by_key(f"case:{area}"))
    now = datetime.now(UTC)
    if schedule is None:
        schedule = await _stairwell_schedule(uow, event, until=until, now=now)
    elif schedule.until is not None and schedule.until >= until:
        return schedule  # an earlier case, arriving late: the later end stands
    else:
        schedule.until, schedule.case_id = until, event.case_id
    before = plan_of(schedule)
    schedule.active = until > now
    schedule.zone_level = await zone_level_of(
        uow, building_id=event.building_id, unit_id=event.unit_id
    )
    schedule.per_day = frequency(schedule, defaults, schedule.zone_level)
    await changed(uow, schedule, now=now, replan=plan_of(schedule) != before)
    if schedule.active:
        await _task_at_once(uow, schedule, defaults, at=event.confirmed_at)
    return schedule


async def _stairwell_schedule(
    uow: UnitOfWork, event: CaseConfirmed, *, until: datetime, now: datetime
) -> DisinfectionSchedule:
    building = await uow.session.get(repo.Place, event.building_id)
    unit = await uow.session.get(repo.Place, event.unit_id) if event.unit_id else None
    label = "stairwell"
    if event.household_id is not None:
        household = await uow.session.get(repo.Household, event.household_id)
        label += f" of household {household.code}" if household else ""
    if unit is not None:
        label += f", unit {unit.code}"
    if building is not None:
        label += f", building {building.code}"
    schedule = DisinfectionSchedule(
        town_id=event.town_id,
        committee_id=building.committee_id if building else None,
        compound_id=event.compound_id,
        building_id=event.building_id,
        target=DisinfectionTarget.stairwell.value,
        unit_id=event.unit_id,
        label=label,
        reason=ScheduleReason.case.value,
        auto_key=f"case:{event.unit_id or event.building_id}",
        per_day=0,
        team="",
        active=True,
        until=until,
        case_id=event.case_id,
        slots_from=now,
        version=0,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(schedule)
    await uow.session.flush()
    return schedule


async def _task_at_once(
    uow: UnitOfWork,
    schedule: DisinfectionSchedule,
    defaults: DisinfectionDefaults,
    *,
    at: datetime,
) -> None:
    """A case's stairwell is disinfected now, not at the next slot: a task from the
    confirmation, due within one slot's length."""
    due = max(at, datetime.now(UTC)) + slot_length(defaults, schedule.per_day)
    row = _task_row(schedule, slot_at=at, due_at=due)
    await uow.session.execute(
        insert_ignoring_duplicates(table_of(DisinfectionTask), uow.dialect).values(**row)
    )


# ---- the periodic job ----


def _task_row(
    schedule: DisinfectionSchedule, *, slot_at: datetime, due_at: datetime
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "town_id": schedule.town_id,
        "committee_id": schedule.committee_id,
        "compound_id": schedule.compound_id,
        "building_id": schedule.building_id,
        "schedule_id": schedule.id,
        "unit_id": schedule.unit_id,
        "target": schedule.target,
        "label": schedule.label,
        "slot_at": slot_at,
        "due_at": due_at,
        "status": TaskStatus.pending.value,
        "version": 1,
    }


async def make_tasks(uow: UnitOfWork, now: datetime) -> int:
    """Make the current town day's tasks of every active schedule not made yet; return how
    many this run inserted (a racing replica's rows are skipped by the unique key)."""
    schedules = list(await uow.session.scalars(repo.schedules_needing_tasks(now=now)))
    defaults = await repo.defaults_of_towns(uow, {s.town_id for s in schedules})
    zone = uow.settings.zone
    rows = []
    for schedule in schedules:
        town = defaults[schedule.town_id]
        for slot_at, due_at in slots(town, per_day=schedule.per_day, at=now, zone=zone):
            if due_at > schedule.slots_from and (
                schedule.until is None or slot_at < schedule.until
            ):
                rows.append(_task_row(schedule, slot_at=slot_at, due_at=due_at))
        schedule.made_through = day_end(now, zone=zone)
        if schedule.until is not None and schedule.until <= now:
            schedule.active = False  # a case's stairwell schedule ran its days
            await changed(uow, schedule, now=now, replan=True)
    made = 0
    statement = insert_ignoring_duplicates(table_of(DisinfectionTask), uow.dialect)
    for row in sorted(rows, key=lambda r: (r["schedule_id"], r["slot_at"])):
        made += (await uow.session.execute(statement.values(**row))).rowcount  # type: ignore[attr-defined]
    await uow.session.flush()
    return made


async def mark_missed(uow: UnitOfWork, now: datetime) -> int:
    """Mark pending tasks whose slot has passed as missed and publish each; return how
    many."""
    tasks = list(await uow.session.scalars(repo.overdue_tasks(now=now, limit=MISSED_BATCH)))
    for task in tasks:
        task.status, task.missed_at, task.version = TaskStatus.missed.value, now, task.version + 1
        uow.emit(
            DisinfectionMissed(
                task_id=task.id,
                task_version=task.version,
                schedule_id=task.schedule_id,
                town_id=task.town_id,
                compound_id=task.compound_id,
                building_id=task.building_id,
                unit_id=task.unit_id,
                label=task.label,
                slot_at=task.slot_at,
                due_at=task.due_at,
            ),
            compound_id=task.compound_id,
        )
    await uow.session.flush()
    return len(tasks)


async def run_job(uow: UnitOfWork, now: datetime) -> None:
    """The periodic job ``disinfection-tasks``: make the day's tasks, mark the missed."""
    await make_tasks(uow, now)
    await mark_missed(uow, now)


# ---- completion ----


async def complete(
    uow: UnitOfWork, *, task_id: uuid.UUID, data: schemas.CompletionIn, now: datetime
) -> DisinfectionTask:
    """Record a task as done. Done already, it stays as first recorded: the same completion
    resent (a phone unsure of its answer) gets the same answer, another one a 409. A time in
    the future or before the slot began, beyond the tolerance for phones' clocks, is 422."""
    task = await uow.get(DisinfectionTask, task_id, what="disinfection task")
    COMPLETE.check(uow, Place.of(task))
    await uow.session.refresh(task, with_for_update=True)
    if task.status == TaskStatus.done.value:
        if _resent(task, data, by=uow.principal.username):
            return task
        assert task.done_at is not None
        raise Conflict(
            f"this task was done already, at {task.done_at.isoformat()} "
            f"(recorded by {task.done_by}); that record stands"
        )
    _check_done_at(
        task, data.done_at, latest=uow.settings.latest_stated(), skew=uow.settings.clock_skew
    )
    await _check_person(uow, data.done_by_person_id, "done_by_person_id")
    task.status, task.done_at = TaskStatus.done.value, data.done_at or now
    task.done_by = uow.principal.username
    task.done_by_person_id = data.done_by_person_id
    task.note, task.photo_ref = data.note, data.photo_ref
    task.version += 1
    await uow.session.flush()
    uow.emit(
        DisinfectionDone(
            task_id=task.id,
            task_version=task.version,
            schedule_id=task.schedule_id,
            town_id=task.town_id,
            compound_id=task.compound_id,
            building_id=task.building_id,
            unit_id=task.unit_id,
            slot_at=task.slot_at,
            done_at=task.done_at,
            done_by=task.done_by,
            done_by_person_id=task.done_by_person_id,
            late=task.missed_at is not None,
        ),
        compound_id=task.compound_id,
    )
    return task


def _resent(task: DisinfectionTask, data: schemas.CompletionIn, *, by: str) -> bool:
    """Whether the completion is the one recorded, sent again by the same account (without a
    time, the recorded one is taken as its)."""
    return (
        task.done_by == by
        and (data.done_at is None or data.done_at == task.done_at)
        and data.done_by_person_id == task.done_by_person_id
        and data.note == task.note
        and data.photo_ref == task.photo_ref
    )


def _check_done_at(
    task: DisinfectionTask, done_at: datetime | None, *, latest: datetime, skew: timedelta
) -> None:
    """A stated time is neither ahead of our clock (``latest``: settings' ``latest_stated``,
    as every stated time is judged) nor before the task's slot began, beyond the tolerance
    for the phone's clock (settings' ``clock_skew``)."""
    if done_at is None:
        return
    if done_at > latest:
        raise Invalid.on("done_at", f"done_at {done_at.isoformat()} is in the future")
    if done_at < task.slot_at - skew:
        raise Invalid.on(
            "done_at",
            f"done_at {done_at.isoformat()} is before the task's slot began "
            f"({task.slot_at.isoformat()})",
        )


async def missed_by_building(
    uow: UnitOfWork, *, compound_id: uuid.UUID | None, building_id: uuid.UUID | None
) -> list[schemas.MissedGroup]:
    tasks = await uow.session.scalars(
        repo.missed_tasks(compound_id=compound_id, building_id=building_id)
    )
    groups: dict[tuple[Any, Any], list[schemas.TaskOut]] = {}
    for task in tasks:
        key = (task.compound_id, task.building_id)
        groups.setdefault(key, []).append(schemas.TaskOut.model_validate(task))
    return [
        schemas.MissedGroup(compound_id=c, building_id=b, missed=len(found), tasks=found)
        for (c, b), found in groups.items()
    ]


async def get_schedule(uow: UnitOfWork, schedule_id: uuid.UUID) -> DisinfectionSchedule:
    return await uow.get(DisinfectionSchedule, schedule_id, what="disinfection schedule")
