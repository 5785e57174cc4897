"""Daily antigen self-tests: one report per resident and day, one by one or as a building
leader's list. The same report again changes nothing; a different one the same day corrects
it (and says what it replaced). A positive test asks for a door-to-door PCR retest: a
``pcr_after_antigen`` task, which a single retest tube in any open round closes. A later
correction to negative leaves that task open: once seen, a positive is checked by PCR."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from services.testing import identity
from services.testing.antigen import repository, schemas
from services.testing.models import (
    AntigenReport,
    DirectoryPlace,
    Task,
    TaskKind,
    TaskStatus,
)
from shared.authz import FIELD, Relation, policy
from shared.directory.tables import ResidentRow
from shared.ids import new_id
from shared.pagination import Page
from shared.uow import UnitOfWork

ROW = TypeAdapter(schemas.AntigenRowIn)


@dataclass
class Recorded:
    report: AntigenReport
    outcome: str
    previous: schemas.Previous | None = None
    task_id: uuid.UUID | None = None


@dataclass
class Outcome:
    recorded: list[Recorded] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.recorded if r.outcome == outcome)


def town_date(at: datetime, zone: ZoneInfo) -> date:
    """The date at ``at`` on the town office's clock (``settings.zone``): a self-test read at
    06:30 in Shanghai is that day's, though UTC still counts the day before."""
    return at.astimezone(zone).date()


def parse_rows(raw: Sequence[dict[str, Any]]) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    """Each row of a list on its own: the valid ones with their index, and the errors of the
    others by field."""
    rows: list[tuple[int, Any]] = []
    errors: list[dict[str, Any]] = []
    for n, item in enumerate(raw):
        try:
            rows.append((n, ROW.validate_python(item)))
        except ValidationError as exc:
            resident = item.get("resident_id") if isinstance(item, dict) else None
            for error in exc.errors():
                errors.append(
                    {
                        "row": n,
                        "resident_id": str(resident) if resident is not None else None,
                        "field": ".".join(str(p) for p in error["loc"]) or "row",
                        "message": str(error["msg"]),
                    }
                )
    return rows, errors


# Anyone in the field records self-tests of the residents they can see (each row's resident
# is looked up in the caller's scope; the others are row errors).
REPORT = policy("antigen reports", "record", *FIELD, relation=Relation.sees)


async def record_reports(
    uow: UnitOfWork,
    *,
    day: date | None,
    rows: Sequence[tuple[int, schemas.AntigenRowIn]],
    skew: timedelta,
    zone: ZoneInfo,
    building_id: uuid.UUID | None = None,
) -> Outcome:
    """Record the rows for ``day``; without one, each row for its reported_at's date on the
    town's clock (``zone``), or today's there. A row's reported_at may not be later than now
    by more than ``skew`` (the clocks' tolerance, settings' ``clock_skew``), nor, when the
    day is given, fall on another date on the town's clock."""
    REPORT.check_role(uow)
    when = Timing(day=day, now=datetime.now(UTC), skew=skew, zone=zone)
    if building_id is not None:
        await building(uow, building_id)
    outcome = Outcome()
    ids = [row.resident_id for _, row in rows]
    people = await identity.residents(uow, ids)
    same_days = select(AntigenReport).where(
        AntigenReport.day.in_({when.day_of(row) for _, row in rows}),
        AntigenReport.resident_id.in_(ids),
    )
    existing = {(r.resident_id, r.day): r for r in await uow.session.scalars(same_days)}
    seen: set[uuid.UUID] = set()
    now = when.now
    for n, row in rows:
        problem = when.check(row) or _check(row, people.get(row.resident_id), building_id, seen)
        if problem is not None:
            where, message = problem
            resident = str(row.resident_id)
            outcome.errors.append(
                {"row": n, "resident_id": resident, "field": where, "message": message}
            )
            continue
        seen.add(row.resident_id)
        filed_on = when.day_of(row)
        report = existing.get((row.resident_id, filed_on))
        outcome.recorded.append(_record(uow, row, people[row.resident_id], report, filed_on, now))
    await uow.session.flush()
    await _ask_for_pcr(uow, [r for r in outcome.recorded if r.report.result == "positive"], now)
    return outcome


@dataclass(frozen=True, kw_only=True)
class Timing:
    """When a self-test may have been read: not in the future beyond the clocks' tolerance
    (as for the tubes' swabs), and on the report's day as the town counts days."""

    day: date | None
    now: datetime
    skew: timedelta
    zone: ZoneInfo

    def day_of(self, row: schemas.AntigenRowIn) -> date:
        """The row's day: the one given, else the town's date when it was read (now if not
        said)."""
        return self.day or town_date(row.reported_at or self.now, self.zone)

    def check(self, row: schemas.AntigenRowIn) -> tuple[str, str] | None:
        at = row.reported_at
        if at is None:
            return None
        if at > self.now + self.skew:
            return "reported_at", f"reported_at {at.isoformat()} is in the future"
        local = town_date(at, self.zone)
        if self.day is not None and local != self.day:
            return (
                "reported_at",
                f"reported_at {at.isoformat()} is on {local} in the town "
                f"({self.zone.key}), not on the report's day {self.day}",
            )
        return None


def _check(
    row: schemas.AntigenRowIn,
    person: ResidentRow | None,
    building_id: uuid.UUID | None,
    seen: set[uuid.UUID],
) -> tuple[str, str] | None:
    if person is None:
        return "resident_id", f"no resident {row.resident_id} in your scope"
    if building_id is not None and person.building_id != building_id:
        return "resident_id", f"resident {row.resident_id} does not live in this building"
    if row.resident_id in seen:
        return "resident_id", f"resident {row.resident_id} is listed twice"
    return None


def _record(
    uow: UnitOfWork,
    row: schemas.AntigenRowIn,
    person: ResidentRow,
    report: AntigenReport | None,
    day: date,
    now: datetime,
) -> Recorded:
    if report is None:
        report = AntigenReport(
            id=new_id(),
            resident_id=person.id,
            town_id=person.town_id,
            compound_id=person.compound_id,
            building_id=person.building_id,
            unit_id=person.unit_id,
            day=day,
            result=row.result,
            temperature=row.temperature,
            reported_at=row.reported_at or now,
            reported_by=uow.principal.username,
        )
        uow.session.add(report)
        return Recorded(report, "created")
    if report.result == row.result and report.temperature == row.temperature:
        return Recorded(report, "unchanged")
    previous = schemas.Previous(result=report.result, temperature=report.temperature)
    report.result, report.temperature = row.result, row.temperature
    report.reported_at, report.reported_by = row.reported_at or now, uow.principal.username
    return Recorded(report, "corrected", previous)


async def _ask_for_pcr(uow: UnitOfWork, positives: Sequence[Recorded], now: datetime) -> None:
    """One open PCR retest per resident, whatever the number of positive tests."""
    if not positives:
        return
    waiting = set(
        await uow.session.scalars(
            select(Task.resident_id).where(
                Task.kind == TaskKind.pcr_after_antigen.value,
                Task.status == TaskStatus.open.value,
                Task.resident_id.in_([r.report.resident_id for r in positives]),
            )
        )
    )
    for recorded in positives:
        report = recorded.report
        if report.resident_id in waiting:
            continue
        task = Task(
            id=new_id(),
            round_id=None,
            resident_id=report.resident_id,
            unit_id=report.unit_id,
            town_id=report.town_id,
            compound_id=report.compound_id,
            building_id=report.building_id,
            kind=TaskKind.pcr_after_antigen.value,
            cause_id=report.id,
            status=TaskStatus.open.value,
            door_to_door=True,
            created_at=now,
        )
        uow.session.add(task)
        waiting.add(report.resident_id)
        recorded.task_id = task.id
    await uow.session.flush()


async def present(
    uow: UnitOfWork, reports: Sequence[AntigenReport]
) -> list[schemas.AntigenReportOut]:
    """Reports with the reporting resident's name, in clear (the endpoint's presenter masks)."""
    people = await identity.residents(uow, [r.resident_id for r in reports])
    out = []
    for report in reports:
        person = people.get(report.resident_id)
        out.append(
            schemas.AntigenReportOut(
                id=report.id,
                resident_id=report.resident_id,
                name=person.name if person else None,
                compound_id=report.compound_id,
                building_id=report.building_id,
                unit_id=report.unit_id,
                day=report.day,
                result=report.result,
                temperature=report.temperature,
                reported_at=report.reported_at,
                reported_by=report.reported_by,
            )
        )
    return out


async def building(uow: UnitOfWork, building_id: uuid.UUID) -> None:
    """A building the caller sees: another compound's, or a place that is no building (a
    compound, a unit), is a 404 naming ``building_id``, not a list of nobody."""
    await uow.get(
        DirectoryPlace,
        building_id,
        what="building",
        field="building_id",
        where=DirectoryPlace.kind == "building",
    )


async def missing(
    uow: UnitOfWork,
    *,
    building_id: uuid.UUID,
    day: date | None,
    zone: ZoneInfo,
    cursor: str | None,
    limit: int,
) -> Page[schemas.MissingResident]:
    """A page of the building's residents without a report that day (today on the town's
    clock, if none): the leader's list to chase."""
    await building(uow, building_id)
    day = day or town_date(datetime.now(UTC), zone)
    people, following = await repository.missing_page(
        uow, building_id=building_id, day=day, cursor=cursor, limit=limit
    )
    items = [
        schemas.MissingResident(
            resident_id=p.id,
            name=p.name,
            unit_id=p.unit_id,
            household_id=p.household_id,
            phone=p.phone,
        )
        for p in people
    ]
    return Page(items=items, next_cursor=following)
