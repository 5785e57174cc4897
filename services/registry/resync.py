"""Re-sync: republish the registry's state as snapshot events, so another service can rebuild
its projection from nothing (``cordon resync`` or ``POST /v1/registry/resync``)."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy import select

from services.registry.models import (
    SERVICE,
    Building,
    Committee,
    Compound,
    Grid,
    GridBuilding,
    Resident,
    Town,
    Unit,
    Zone,
)
from services.registry.places.service import grid_record
from services.registry.residents.service import record_of
from shared.authz import TOWN, Role, policy
from shared.contracts.registry import (
    PlaceRecord,
    PlacesSnapshot,
    ResidentsSnapshot,
    SnapshotCompleted,
    SnapshotStarted,
    ZoneChanged,
    ZonesSnapshot,
)
from shared.db import AnySelect
from shared.http import Uow, service_router
from shared.ids import new_id
from shared.uow import UnitOfWork

BATCH = 5_000


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


async def publish_snapshot(uow: UnitOfWork) -> int:
    """Write the whole snapshot to the outbox; return how many events it took."""
    resync_id = new_id()
    uow.emit(SnapshotStarted(resync_id=resync_id))
    batches = places = residents = zones = 0
    place_kinds: list[tuple[str, Any]] = [
        ("town", Town),
        ("committee", Committee),
        ("compound", Compound),
        ("building", Building),
        ("unit", Unit),
    ]
    for kind, model in place_kinds:
        async for page in _pages(uow, select(model), model.id):
            batches += 1
            places += len(page)
            found = [_place(kind, row) for row in page]
            uow.emit(PlacesSnapshot(resync_id=resync_id, batch=batches, places=found))
            await uow.flush_events()
    async for page in _pages(uow, select(Grid), Grid.id):
        batches += 1
        places += len(page)
        found = await _grids(uow, page)
        uow.emit(PlacesSnapshot(resync_id=resync_id, batch=batches, places=found))
        await uow.flush_events()
    async for page in _pages(uow, select(Resident), Resident.id):
        batches += 1
        residents += len(page)
        records = [record_of(r) for r in page]
        uow.emit(ResidentsSnapshot(resync_id=resync_id, batch=batches, residents=records))
        await uow.flush_events()
        uow.session.expunge_all()
    async for page in _pages(uow, select(Zone), Zone.id):
        batches += 1
        zones += len(page)
        uow.emit(ZonesSnapshot(resync_id=resync_id, batch=batches, zones=[_zone(z) for z in page]))
    uow.emit(
        SnapshotCompleted(
            resync_id=resync_id,
            batches=batches,
            residents=residents,
            places=places,
            zones=zones,
        )
    )
    await uow.flush_events()
    return batches + 2


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
