"""Recurring requests (a dialysis patient's trips every Monday, Wednesday and Friday at
07:30): a periodic job makes each occurrence a request of its own, the town's lead time
before it. Every worker replica runs the job; the occurrence's key (recurrence, date) is
unique, so of two replicas racing one inserts it and only that one emits its event."""

import logging
import uuid
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from services.logistics.models import HelpRequest, Recurrence
from services.logistics.recurrences import repository as recurrences
from services.logistics.recurrences import schemas
from services.logistics.requests import repository, rules
from services.logistics.requests.service import CANCEL, CREATE, event, for_kind, request_row
from shared.authz import MANAGERS, Place, Role, policy
from shared.contracts.logistics import RequestCreated
from shared.db import insert_ignoring_duplicates, table_of
from shared.ids import new_id
from shared.problems import Conflict, Invalid
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

# Occurrences missed by longer than this (the workers were down) are not made any more.
CATCH_UP = timedelta(hours=12)
# Residents' recurring trips are the committee's plans: those who enter requests read them,
# not volunteers (they see their own errands, each occurrence once it is given to them).
READ = policy("recurring-requests", "read", *MANAGERS, Role.grid_leader, Role.building_leader)


async def page(
    uow: UnitOfWork, *, resident_id: uuid.UUID | None, cursor: str | None, limit: int
) -> tuple[list[Recurrence], str | None]:
    READ.check_role(uow)
    return await recurrences.recurrences_page(
        uow, resident_id=resident_id, cursor=cursor, limit=limit
    )


async def create(uow: UnitOfWork, *, data: schemas.RecurrenceCreate) -> Recurrence:
    resident = await repository.subject(uow, data.resident_id, field="resident_id")
    CREATE.check(uow, Place(resident.town_id, resident.committee_id, resident.compound_id,
                            resident.building_id), field="resident_id")  # fmt: skip
    _refuse_over(data, today=uow.settings.today())
    weekdays: list[str] = sorted(set(data.weekdays), key=rules.DAYS.index)
    await _refuse_repeat(uow, data=data, resident_id=resident.id, weekdays=weekdays)
    recurrence = Recurrence(
        id=new_id(),
        resident_id=resident.id,
        household_id=resident.household_id,
        unit_id=resident.unit_id,
        town_id=resident.town_id,
        committee_id=resident.committee_id,
        compound_id=resident.compound_id,
        building_id=resident.building_id,
        kind=data.kind,
        reason=data.reason,
        details=data.details,
        hospital=data.hospital,
        weekdays=weekdays,
        weekdays_key=",".join(weekdays),
        at_time=data.at,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        active=True,
        created_by=uow.principal.username,
        created_at=datetime.now(UTC),
    )
    uow.session.add(recurrence)
    await uow.session.flush()
    return recurrence


def _refuse_over(data: schemas.RecurrenceCreate, *, today: date) -> None:
    """A series whose last day has passed on the town office's calendar would make no trip
    and show ``ended`` at once: a typo in the year or an old prescription, refused (422
    naming ``ends_on``) rather than kept as if it were planned. One ending today still runs."""
    if data.ends_on is not None and data.ends_on < today:
        raise Invalid.on(
            "ends_on",
            f"ends_on {data.ends_on.isoformat()} is before today ({today.isoformat()}, the "
            "town office's date): this series would make no trip; give its last day to come",
        )


async def _refuse_repeat(
    uow: UnitOfWork, *, data: schemas.RecurrenceCreate, resident_id: uuid.UUID, weekdays: list[str]
) -> None:
    """A second active series of the same kind, days and time for the resident over days the
    first one covers too (entered twice, with no Idempotency-Key) would make those trips
    twice: 409 naming the first one. A series for a period after the first one ends is
    another prescription. The unique index ``uq_recurring_requests_active`` decides between
    two sent at once."""
    existing = await recurrences.overlapping_series(
        uow,
        resident_id=resident_id,
        kind=data.kind,
        weekdays_key=",".join(weekdays),
        at_time=data.at,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
    )
    if existing is not None:
        message = (
            f"recurring request {existing.id} already makes this {data.kind} for resident "
            f"{resident_id} on {', '.join(weekdays)} at {data.at} (entered by "
            f"{existing.created_by}, from {existing.starts_on}"
            f"{f' to {existing.ends_on}' if existing.ends_on else ''}); stop it first to enter "
            "it anew, or start the new one after it ends"
        )
        raise Conflict(message, errors=[{"field": "weekdays", "message": message}])


async def stop(uow: UnitOfWork, *, recurrence_id: uuid.UUID) -> Recurrence:
    recurrence = await uow.get(Recurrence, recurrence_id, what="recurring request")
    CANCEL.check(uow, Place.of(recurrence))
    match status_of(recurrence, today=uow.settings.today()):
        case "stopped":
            raise Conflict(f"recurring request {recurrence_id} is already stopped")
        case "ended":
            raise Conflict(f"recurring request {recurrence_id} ended on {recurrence.ends_on}")
    recurrence.active = False
    await uow.session.flush()
    return recurrence


def status_of(recurrence: Recurrence, *, today: date) -> schemas.RecurrenceStatus:
    """Where a series stands on the town office's date: past its last day it is over, though
    nobody stopped it (the job makes nothing after ``ends_on`` either)."""
    if not recurrence.active:
        return "stopped"
    if recurrence.ends_on is not None and recurrence.ends_on < today:
        return "ended"
    return "active"


def present(uow: UnitOfWork, recurrence: Recurrence) -> schemas.RecurrenceOut:
    status = status_of(recurrence, today=uow.settings.today())
    stored = {
        name: getattr(recurrence, name)
        for name in schemas.RecurrenceOut.model_fields
        if name not in ("active", "status")
    }
    return schemas.RecurrenceOut(**stored, active=status == "active", status=status)


def occurrences(
    recurrence: Recurrence, *, now: datetime, lead: timedelta, zone: ZoneInfo
) -> list[tuple[date, datetime]]:
    """The (local date, time) of each occurrence due to appear by ``now``: its time less the
    lead has come, and it is not over by more than :data:`CATCH_UP`."""
    hour, minute = (int(x) for x in recurrence.at_time.split(":"))
    today = now.astimezone(zone).date()
    found = []
    for offset in (-1, 0, 1, 2):
        day = today + timedelta(days=offset)
        if rules.DAYS[day.weekday()] not in recurrence.weekdays or day < recurrence.starts_on:
            continue
        if recurrence.ends_on is not None and day > recurrence.ends_on:
            continue
        at = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
        if at - lead <= now < at + CATCH_UP:
            found.append((day, at))
    return found


async def make_occurrences(uow: UnitOfWork, now: datetime) -> None:
    """The periodic job: insert each occurrence that is due to appear, once."""
    query = select(Recurrence).where(
        Recurrence.active.is_(True),
        Recurrence.starts_on <= (now + timedelta(days=2)).date(),
        or_(Recurrence.ends_on.is_(None), Recurrence.ends_on >= (now - timedelta(days=2)).date()),
    )
    requests = table_of(HelpRequest)
    for recurrence in list(await uow.session.scalars(query)):
        settings = await repository.settings_for(uow, recurrence.town_id)
        lead = timedelta(minutes=settings.recurring_lead_minutes)
        found = occurrences(recurrence, now=now, lead=lead, zone=uow.settings.zone)
        if not found:
            continue
        resident = (await repository.subjects(uow, [recurrence.resident_id])).get(
            recurrence.resident_id
        )
        if resident is None:
            # Gone from the directory (a re-sync no longer holds them): nobody to drive, and
            # no reason to hold up the other series.
            log.warning(
                "recurring request %s: resident %s is not in the directory; skipped",
                recurrence.id,
                recurrence.resident_id,
            )
            continue
        household = await for_kind(uow, resident, recurrence.kind)
        for day, at in found:
            row = request_row(
                resident,
                kind=recurrence.kind,
                reason=recurrence.reason,
                details=recurrence.details,
                hospital=recurrence.hospital,
                household_tags=household,
                created_by=f"recurring:{recurrence.id}",
                now=now,
                due_at=at,
                recurrence_id=recurrence.id,
                occurs_on=day,
            )
            insert = insert_ignoring_duplicates(requests, uow.dialect).values(row)
            if (await uow.session.execute(insert)).rowcount != 1:  # type: ignore[attr-defined]
                continue
            request = SimpleNamespace(**row)
            uow.emit(
                event(
                    RequestCreated,
                    request,
                    at=now,
                    reason=recurrence.reason,
                    recurrence_id=recurrence.id,
                    occurs_on=day,
                ),
                compound_id=request.compound_id,
                urgent=request.priority == "urgent",
            )
