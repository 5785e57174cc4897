"""Re-sync: republish the registry's state as snapshot events, so another service can rebuild
its projection from nothing (``cordon resync`` or ``POST /v1/registry/resync``).

A snapshot covers the towns its caller sees (a town operator's own town; ``cordon resync``
every town) and says so in ``registry.snapshot.started``; projections replace exactly
those towns. Every change older than the start (a lower stream position) is in the
snapshot: before reading, it waits for the transactions that were writing events when it
started, so a projection may drop anything older than the start that arrives later."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import select, text

from services.registry.models import (
    SERVICE,
    Assignment,
    Building,
    Committee,
    Compound,
    Grid,
    GridBuilding,
    Household,
    Resident,
    Staff,
    Town,
    Unit,
    Volunteer,
    Zone,
)
from services.registry.people.service import assignment_record, person_record
from services.registry.places.service import grid_record
from services.registry.residents.service import household_record, record_of
from shared.authz import TOWN, Role, policy
from shared.contracts.registry import (
    AssignmentsSnapshot,
    HouseholdsSnapshot,
    PeopleSnapshot,
    PlaceRecord,
    PlacesSnapshot,
    ResidentsSnapshot,
    SnapshotCompleted,
    SnapshotStarted,
    ZoneChanged,
    ZonesSnapshot,
)
from shared.db import AnySelect
from shared.events import Event
from shared.http import Uow, service_router
from shared.ids import new_id
from shared.problems import NotFound, Unavailable
from shared.uow import UnitOfWork

BATCH = 5_000
# How often the start checks whether the writers it waits for have finished.
SETTLE_POLL_SECONDS = 0.02
# A ledger import of a million residents writes for about a minute.
SETTLE_WITHIN_SECONDS = 180.0


async def _pages(uow: UnitOfWork, query: AnySelect, id_column: Any) -> AsyncIterator[list[Any]]:
    last = None
    while True:
        page_query = query if last is None else query.where(id_column > last)
        page = list((await uow.session.scalars(page_query.order_by(id_column).limit(BATCH))).all())
        if page:
            yield page
        if len(page) < BATCH:
            return
        last = page[-1].id


def _place(kind: Any, row: Any) -> PlaceRecord:
    return PlaceRecord(
        kind=kind,
        id=row.id,
        town_id=row.town_id,
        committee_id=getattr(row, "committee_id", None)
        or (row.id if kind == "committee" else None),
        compound_id=row.compound_id,
        building_id=row.building_id,
        code=row.code,
        name=getattr(row, "name", None) or row.code,
    )


async def _grids(uow: UnitOfWork, grids: list[Grid]) -> list[PlaceRecord]:
    members = select(GridBuilding.grid_id, GridBuilding.building_id).where(
        GridBuilding.grid_id.in_([g.id for g in grids])
    )
    buildings: dict[uuid.UUID, list[uuid.UUID]] = {g.id: [] for g in grids}
    for grid_id, building_id in (await uow.session.execute(members)).all():
        if building_id is not None:
            buildings[grid_id].append(building_id)
    return [grid_record(g, buildings[g.id]) for g in grids]


def _zone(zone: Zone) -> ZoneChanged:
    return ZoneChanged(
        town_id=zone.town_id,
        compound_id=zone.compound_id,
        building_id=zone.building_id,
        unit_id=zone.unit_id,
        from_level=None,
        to_level=zone.level,
        reason=zone.reason,
        set_by=zone.set_by,
        at=zone.since,
    )


async def _settle_writers(uow: UnitOfWork) -> None:
    """Wait for the transactions that hold events in the outbox uncommitted: their positions
    are below the snapshot's start, so their changes must be in it. Later writers get higher
    positions and reach projections after the snapshot. (SQLite has one writer at a time.)"""
    if uow.dialect != "postgresql":
        return
    writers = text(
        "SELECT DISTINCT virtualtransaction FROM pg_locks "
        "WHERE relation = 'outbox'::regclass AND pid <> pg_backend_pid()"
    )
    waiting = set(await uow.session.scalars(writers))
    deadline = time.monotonic() + SETTLE_WITHIN_SECONDS
    while waiting:
        if time.monotonic() > deadline:
            raise Unavailable(
                f"{len(waiting)} transactions writing registry events are still open after "
                f"{SETTLE_WITHIN_SECONDS:.0f} s; a snapshot now could miss them",
                headers={"Retry-After": "30"},
            )
        await asyncio.sleep(SETTLE_POLL_SECONDS)
        waiting &= set(await uow.session.scalars(writers))


class _Snapshot:
    def __init__(self, uow: UnitOfWork, resync_id: uuid.UUID) -> None:
        self.uow = uow
        self.resync_id = resync_id
        self.batches = 0
        self.counts: dict[str, int] = {}

    async def emit(self, contract: Callable[..., Event], **records: list[Any]) -> None:
        """One batch: ``records`` is the contract's one list field (counted under its name)."""
        [(what, rows)] = records.items()
        self.batches += 1
        self.counts[what] = self.counts.get(what, 0) + len(rows)
        self.uow.emit(contract(resync_id=self.resync_id, batch=self.batches, **records))
        await self.uow.flush_events()


async def publish_snapshot(uow: UnitOfWork) -> int:
    """Write the snapshot of the towns the caller sees to the outbox; return how many events
    it took."""
    resync_id = new_id()
    towns = list(await uow.session.scalars(select(Town.id).order_by(Town.id)))
    if not towns:
        # A snapshot of nothing would leave projections waiting for a start they never get.
        raise NotFound("no town in your scope to re-sync")
    uow.emit(SnapshotStarted(resync_id=resync_id, town_ids=towns))
    await uow.flush_events()
    await _settle_writers(uow)
    snapshot = _Snapshot(uow, resync_id)
    place_kinds: list[tuple[str, Any]] = [
        ("town", Town),
        ("committee", Committee),
        ("compound", Compound),
        ("building", Building),
        ("unit", Unit),
    ]
    for kind, model in place_kinds:
        async for page in _pages(uow, select(model), model.id):
            found = [_place(kind, row) for row in page]
            await snapshot.emit(PlacesSnapshot, places=found)
    async for page in _pages(uow, select(Grid), Grid.id):
        grids = await _grids(uow, page)
        await snapshot.emit(PlacesSnapshot, places=grids)
    async for page in _pages(uow, select(Household), Household.id):
        households = [household_record(h) for h in page]
        await snapshot.emit(HouseholdsSnapshot, households=households)
    async for page in _pages(uow, select(Resident), Resident.id):
        records = [record_of(r) for r in page]
        await snapshot.emit(ResidentsSnapshot, residents=records)
        uow.session.expunge_all()
    for person_model in (Staff, Volunteer):
        async for page in _pages(uow, select(person_model), person_model.id):
            people = [person_record(p) for p in page]
            await snapshot.emit(PeopleSnapshot, people=people)
    async for page in _pages(uow, select(Assignment), Assignment.id):
        assignments = [assignment_record(a) for a in page]
        await snapshot.emit(AssignmentsSnapshot, assignments=assignments)
    async for page in _pages(uow, select(Zone), Zone.id):
        zones = [_zone(z) for z in page]
        await snapshot.emit(ZonesSnapshot, zones=zones)
    counts = snapshot.counts
    uow.emit(
        SnapshotCompleted(
            resync_id=resync_id,
            batches=snapshot.batches,
            residents=counts.get("residents", 0),
            places=counts.get("places", 0),
            zones=counts.get("zones", 0),
            households=counts.get("households", 0),
            people=counts.get("people", 0),
            assignments=counts.get("assignments", 0),
        )
    )
    await uow.flush_events()
    return snapshot.batches + 2


router = service_router(SERVICE, tags=["re-sync"])


class ResyncOut(BaseModel):
    events: int


# The snapshot holds what the caller sees; the town office starts it.
RESYNC = policy("registry", "resync", *TOWN, Role.service)


@router.post(
    "/registry/resync",
    response_model=ResyncOut,
    status_code=202,
    summary="Republish the registry's state as snapshot events",
    description="For a service whose projection is empty or behind. Town operators only.",
)
async def resync(uow: Uow, request: Request) -> ResyncOut:
    RESYNC.check_role(uow)
    return ResyncOut(events=await publish_snapshot(uow))
