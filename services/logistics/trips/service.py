"""Medicine runs: the resident's insurance card leaves with the volunteer and must come back.
Each run's card gets a label ("one person, one file, one label") when it is collected, goes
to the hospital and is returned to the resident, in that order (straight back when the run
is called off before the hospital); a card not returned by the
town's deadline is reported overdue once, like a request. Runs to the same hospital are
grouped into one trip."""

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from services.logistics.models import HelpRequest, Trip
from services.logistics.requests import repository
from services.logistics.requests.repository import OPEN
from services.logistics.requests.service import ASSIGN, WORK, event
from services.logistics.trips import repository as trips_repository
from services.logistics.trips import schemas
from shared.authz import Place
from shared.contracts.logistics import (
    CardAtHospital,
    CardCollected,
    CardEvent,
    CardOverdue,
    CardReturned,
    TripPlanned,
)
from shared.db import table_of
from shared.ids import new_id
from shared.problems import Conflict
from shared.uow import UnitOfWork

# The steps a card may take next from each state (None: not collected yet). A collected
# card may go straight back to its resident: the run was called off before the hospital.
NEXT: dict[str | None, tuple[str, ...]] = {
    None: ("collected",),
    "collected": ("at_hospital", "returned"),
    "at_hospital": ("returned",),
}
EVENTS: dict[str, type[CardEvent]] = {
    "collected": CardCollected,
    "at_hospital": CardAtHospital,
    "returned": CardReturned,
}
# Runs that may still join a trip: not finished, card not back.
GROUPABLE = ("open", "assigned", "in_progress")


def label_of(request: HelpRequest) -> str:
    """The run's label: its own (the request id's random tail), so one card, one file."""
    return f"MR-{request.id.hex[-10:].upper()}"


async def card_step(uow: UnitOfWork, *, request_id: uuid.UUID, status: str) -> HelpRequest:
    request = await repository.locked(uow, request_id)
    WORK.check(uow, Place.of(request))
    if request.kind != "medicine_run":
        raise Conflict.on("kind", f"a {request.kind} request carries no insurance card")
    if status != "returned" and request.status not in OPEN:
        # Nobody is to run an errand done, closed or cancelled: no card goes out for it (one
        # out is always taken back: the errand cannot end while it is).
        raise Conflict.on(
            "status", f"the medicine run is {request.status}: its card is not to be {status}"
        )
    expected = NEXT.get(request.card_status, ())
    if status not in expected:
        now_is = request.card_status or "not collected"
        steps = " or ".join(expected) or "none (it is back)"
        raise Conflict(
            f"the card is {now_is}; its next step is {steps}",
            errors=[{"field": "status", "message": f"the card is {now_is}"}],
        )
    now = datetime.now(UTC)
    if status == "collected":
        settings = await repository.settings_for(uow, request.town_id)
        request.card_label = label_of(request)
        request.card_collected_at = now
        request.card_due_at = now + timedelta(hours=settings.card_return_hours)
    elif status == "at_hospital":
        request.card_at_hospital_at = now
    else:
        request.card_returned_at = now
    request.card_status = status
    request.revision += 1
    await uow.session.flush()
    uow.emit(_card_event(EVENTS[status], request, now), compound_id=request.compound_id)
    return request


def _card_event(kind: type[CardEvent], request: HelpRequest, now: datetime) -> CardEvent:
    assert request.card_label and request.card_status and request.card_due_at
    return event(
        kind,
        request,
        at=now,
        label=request.card_label,
        card_status=request.card_status,
        card_due_at=request.card_due_at,
    )


async def report_overdue_cards(uow: UnitOfWork, now: datetime) -> None:
    """Raise ``logistics.card.overdue`` once per card not back by its due time: the mark and
    the event commit together, and a second replica's UPDATE skips what the first marked."""
    requests = table_of(HelpRequest)
    c = requests.c
    marked = await uow.session.execute(
        update(requests)
        .where(
            c.card_status.in_(("collected", "at_hospital")),
            c.card_due_at < now,
            c.card_overdue_reported_at.is_(None),
        )
        .values(card_overdue_reported_at=now, revision=c.revision + 1)
        .returning(c.id)
    )
    ids = [row.id for row in marked.all()]
    if not ids:
        return
    for request in await uow.session.scalars(
        select(HelpRequest).where(HelpRequest.id.in_(ids)).execution_options(populate_existing=True)
    ):
        uow.emit(_card_event(CardOverdue, request, now), compound_id=request.compound_id)


async def plan_trips(uow: UnitOfWork, *, data: schemas.TripPlan) -> list[Trip]:
    """Group the medicine runs in the caller's scope not yet on a trip by hospital (the same
    name, however spaced or cased): one trip per hospital. A compound named narrows them to
    its runs: one the caller sees (404 naming ``compound_id`` otherwise, as any id out of
    scope); each run is then checked on its own place, so a building leader naming their own
    compound groups their buildings' runs there."""
    ASSIGN.check_role(uow)
    if data.compound_id is not None:
        compounds = repository.Place
        await uow.get(
            compounds,
            data.compound_id,
            what="compound",
            field="compound_id",
            where=compounds.kind == "compound",
        )
    query = select(HelpRequest).where(
        HelpRequest.kind == "medicine_run",
        HelpRequest.trip_id.is_(None),
        HelpRequest.status.in_(GROUPABLE),
        HelpRequest.hospital.is_not(None),
    )
    if data.compound_id is not None:
        query = query.where(HelpRequest.compound_id == data.compound_id)
    runs = list(await uow.session.scalars(query.order_by(HelpRequest.id).with_for_update()))
    groups: dict[str, list[HelpRequest]] = defaultdict(list)
    for run in runs:
        if not ASSIGN.allows(uow, Place.of(run)):
            continue
        key = " ".join((run.hospital or "").split()).casefold()
        if data.hospital is None or key == " ".join(data.hospital.split()).casefold():
            groups[key].append(run)
    now = datetime.now(UTC)
    trips = []
    for members in groups.values():
        first = members[0]
        place = Place.common((Place.of(m) for m in members), town_id=first.town_id)
        trip = Trip(
            id=new_id(),
            hospital=first.hospital or "",
            created_by=uow.principal.username,
            created_at=now,
            **place.columns(),
        )
        uow.session.add(trip)
        for member in members:
            member.trip_id = trip.id
        trips.append(trip)
        uow.emit(
            TripPlanned(
                trip_id=trip.id,
                town_id=trip.town_id,
                hospital=trip.hospital,
                request_ids=[m.id for m in members],
            ),
            compound_id=trip.compound_id,
        )
    await uow.session.flush()
    return trips


async def get_trip(uow: UnitOfWork, trip_id: uuid.UUID) -> Trip:
    """A trip of the caller's errands, or a 404."""
    return await uow.get(Trip, trip_id, what="trip", where=trips_repository.only_theirs(uow))


async def present_trips(uow: UnitOfWork, trips: list[Trip]) -> list[schemas.TripOut]:
    runs: dict[uuid.UUID, list[schemas.TripRun]] = defaultdict(list)
    if trips:
        query = (
            select(HelpRequest)
            .where(HelpRequest.trip_id.in_([t.id for t in trips]))
            .order_by(HelpRequest.id)
        )
        # A volunteer sees their own runs on it, not the other residents'.
        if (narrow := repository.visible_to(uow)) is not None:
            query = query.where(narrow)
        for r in await uow.session.scalars(query):
            assert r.trip_id is not None
            runs[r.trip_id].append(
                schemas.TripRun(
                    request_id=r.id, label=r.card_label, status=r.status, card_status=r.card_status
                )
            )
    return [
        schemas.TripOut(
            id=t.id,
            hospital=t.hospital,
            town_id=t.town_id,
            compound_id=t.compound_id,
            created_by=t.created_by,
            created_at=t.created_at,
            runs=runs[t.id],
        )
        for t in trips
    ]
