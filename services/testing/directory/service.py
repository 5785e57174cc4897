"""The testing service's own directory of places, residents and zones, kept from registry
events (single changes, bulk imports and re-sync snapshots alike): the latest state wins."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete

from services.testing.models import (
    DOOR_TO_DOOR_TAGS,
    DirectoryGridBuilding,
    DirectoryPlace,
    DirectoryResident,
    DirectoryZone,
)
from shared.contracts.registry import PlaceRecord, ResidentRecord, ZoneChanged
from shared.db import table_of, upsert
from shared.uow import UnitOfWork


async def _upsert(uow: UnitOfWork, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        statement = upsert(table_of(model), uow.dialect, key=("id",))
        await uow.session.execute(statement, list(rows))


async def apply_places(uow: UnitOfWork, *, places: Sequence[PlaceRecord]) -> None:
    rows = [
        {
            "id": p.id,
            "kind": p.kind,
            "town_id": p.town_id,
            "committee_id": p.committee_id,
            "compound_id": p.compound_id if p.kind != "compound" else p.id,
            "building_id": p.building_id if p.kind != "building" else p.id,
            "parent_id": p.parent_id,
            "code": p.code,
            "name": p.name,
        }
        for p in places
    ]
    await _upsert(uow, DirectoryPlace, rows)
    grids = [p for p in places if p.kind == "grid"]
    if grids:
        table = table_of(DirectoryGridBuilding)
        await uow.session.execute(delete(table).where(table.c.grid_id.in_([g.id for g in grids])))
        members = [{"grid_id": g.id, "building_id": b} for g in grids for b in g.building_ids]
        if members:
            await uow.session.execute(table.insert(), members)


async def apply_residents(uow: UnitOfWork, *, residents: Sequence[ResidentRecord]) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "id": r.id,
            "household_id": r.household_id,
            "town_id": r.town_id,
            "compound_id": r.compound_id,
            "building_id": r.building_id,
            "unit_id": r.unit_id,
            "name": r.name,
            "document_number": r.document_number,
            "phone": r.phone,
            "birth_date": r.birth_date,
            "tags": list(r.tags),
            "door_to_door": bool(DOOR_TO_DOOR_TAGS.intersection(r.tags)),
            "updated_at": now,
        }
        for r in residents
    ]
    await _upsert(uow, DirectoryResident, rows)


async def apply_zone(uow: UnitOfWork, *, change: ZoneChanged) -> None:
    table = table_of(DirectoryZone)
    same_area = (table.c.building_id == change.building_id) & (
        table.c.unit_id.is_(None) if change.unit_id is None else table.c.unit_id == change.unit_id
    )
    await uow.session.execute(delete(table).where(same_area))
    if change.to_level is not None:
        await uow.session.execute(
            table.insert().values(
                id=change.building_id if change.unit_id is None else change.unit_id,
                town_id=change.town_id,
                compound_id=change.compound_id,
                building_id=change.building_id,
                unit_id=change.unit_id,
                level=change.to_level,
                since=change.at,
            )
        )


async def forget_zones(uow: UnitOfWork) -> None:
    await uow.session.execute(delete(table_of(DirectoryZone)))
