"""The directory as a projection of the registry's events: single changes, bulk imports and
re-sync snapshots alike, applied in the order of the registry's stream whatever order they
arrive in (retries, replays from parking and several relays reorder them).

A record is applied only when its event's position is newer than the row's and than the
last re-sync of its town that began; anything older is counted
(``cordon_projection_stale_total``) and dropped. A re-sync replaces exactly what it covers:
once complete, rows of its towns that are older than its start were not in it (gone from the
registry) and are dropped; other towns are untouched."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request
from sqlalchemy import Table, delete, func, select

from shared.bulk import among
from shared.contracts import registry
from shared.db import upsert
from shared.directory.lag import Lag, measure, wait_caught_up
from shared.directory.tables import DOOR_TO_DOOR_TAGS, DirectoryModels
from shared.events import Envelope, Event
from shared.http import runtime_of
from shared.observability import PROJECTION_STALE
from shared.service import Consumer, ServiceRuntime
from shared.uow import UnitOfWork

STREAM = "registry"
# Lookups of current positions go in chunks of this many ids (SQLite's parameter limit).
CHUNK = 5_000
# Work that follows a registry event once the directory has applied it, in the same
# transaction (a service's disinfection schedules following a zone): it reads the directory's
# state, which order and re-syncs already settled, never the event's own claims.
Follower = Callable[[UnitOfWork, Event], Awaitable[None]]


class SnapshotNotStarted(RuntimeError):
    """A re-sync's completion arrived before its start: retried until the start is in."""


@dataclass(frozen=True)
class Directory:
    """One service's directory; ``consumer()`` is what it adds to its ``ServiceSpec``."""

    models: DirectoryModels
    # Which projection this is in metrics and /readyz.
    name: str = "directory"

    def consumer(self, *followers: Follower) -> Consumer:
        """The directory's consumer; ``followers`` run after each event is applied, in its
        transaction and under its inbox (a redelivery runs them no more)."""
        if not followers:
            return Consumer(self.name, ("registry.#",), self.handle)

        async def handle(uow: UnitOfWork, envelope: Envelope) -> None:
            # Read once: a bulk import's event carries thousands of records.
            event = envelope.event()
            await self.apply(uow, envelope, event)
            for follow in followers:
                await follow(uow, event)

        return Consumer(self.name, ("registry.#",), handle)

    async def lag(self, runtime: ServiceRuntime) -> Lag:
        return await measure(runtime, self.models, projection=self.name, stream=STREAM)

    async def require_caught_up(self, runtime: ServiceRuntime) -> Lag:
        """For work that would silently miss what has not arrived (scheduling a round):
        wait a bounded time for the directory to catch up, else a 503 naming the lag."""
        return await wait_caught_up(runtime, self.models, projection=self.name, stream=STREAM)

    def caught_up(self) -> Any:
        """A route dependency giving the wait to await before the work starts: the request
        waits (bounded) for the directory to catch up with the registry, or is answered 503
        with ``Retry-After``. Awaited in the endpoint, after FastAPI has validated the
        request, so a malformed request gets its 422 whatever the lag."""

        async def waiter(request: Request) -> Callable[[], Awaitable[Lag]]:
            runtime = runtime_of(request)
            return lambda: self.require_caught_up(runtime)

        return Depends(waiter)

    async def handle(self, uow: UnitOfWork, envelope: Envelope) -> None:
        """Apply one registry event (unknown types are only counted as applied: the registry
        may publish more than this directory keeps)."""
        await self.apply(uow, envelope, envelope.event())

    async def apply(self, uow: UnitOfWork, envelope: Envelope, event: Event) -> None:
        await _Applying(self, uow, envelope).event(event)
        await _record_progress(uow, self.models, envelope)


class _Applying:
    def __init__(self, directory: Directory, uow: UnitOfWork, envelope: Envelope) -> None:
        self.directory = directory
        self.models = directory.models
        self.uow = uow
        # An event from before positions were stamped applies as before: latest arrival wins.
        self.position = envelope.position if envelope.position is not None else 0
        self.ordered = envelope.position is not None

    async def event(self, event: Any) -> None:
        m = self.models
        match event:
            case registry.PlaceRegistered(place=place):
                await self.places([place])
            case registry.PlacesSnapshot(places=places):
                await self.places(places)
            case registry.HouseholdRegistered(household=household):
                await self.rows(m.Household, [_household(household)])
            case registry.HouseholdsSnapshot(households=households):
                await self.rows(m.Household, [_household(h) for h in households])
            case registry.ResidentRegistered(resident=r) | registry.ResidentUpdated(resident=r):
                await self.rows(m.Resident, [_resident(r)])
            case registry.ResidentsImported(residents=residents, households=households):
                await self.rows(m.Household, [_household(h) for h in households])
                await self.rows(m.Resident, [_resident(r) for r in residents])
            case registry.ResidentsSnapshot(residents=residents):
                await self.rows(m.Resident, [_resident(r) for r in residents])
            case registry.ZoneChanged() as change:
                await self.rows(m.Zone, [_zone(change)])
            case registry.ZonesSnapshot(zones=zones):
                await self.rows(m.Zone, [_zone(z) for z in zones])
            case registry.PeopleChanged(people=people) | registry.PeopleSnapshot(people=people):
                await self.rows(m.Person, [_person(p) for p in people])
            case (
                registry.AssignmentsChanged(assignments=assignments)
                | registry.AssignmentsSnapshot(assignments=assignments)
            ):
                await self.rows(m.Assignment, [_assignment(a) for a in assignments])
            case registry.SnapshotStarted(resync_id=resync_id, town_ids=town_ids):
                await self.snapshot_started(resync_id, town_ids)
            case registry.SnapshotCompleted(resync_id=resync_id):
                await self.snapshot_completed(resync_id)
            case _:
                return

    async def places(self, places: Sequence[registry.PlaceRecord]) -> None:
        applied = await self.rows(self.models.Place, [_place(p) for p in places])
        grids = [p for p in places if p.kind == "grid" and p.id in applied]
        if grids:
            table = self.models.table(self.models.GridBuilding)
            ids = [g.id for g in grids]
            await self.uow.session.execute(delete(table).where(table.c.grid_id.in_(ids)))
            members = [{"grid_id": g.id, "building_id": b} for g in grids for b in g.building_ids]
            if members:
                await self.uow.session.execute(table.insert(), members)

    async def rows(self, model: type[Any], rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Upsert the rows this event is newer for; count and drop the others. Returns the
        ids applied."""
        if not rows:
            return set()
        table = self.models.table(model)
        fresh = await self._newer(table, rows) if self.ordered else rows
        stale = len(rows) - len(fresh)
        if stale:
            PROJECTION_STALE.labels(self.uow.service, self.directory.name, table.name).inc(stale)
        if fresh:
            for row in fresh:
                row["position"] = self.position
            # Two consumers racing on one row: the newer still wins.
            newer = "position" if self.ordered else None
            statement = upsert(table, self.uow.dialect, key=("id",), newer=newer)
            await self.uow.session.execute(statement, fresh)
        return {row["id"] for row in fresh}

    async def _newer(self, table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        floors = await _floors(self.uow, self.models)
        held: dict[uuid.UUID, int] = {}
        ids = [row["id"] for row in rows]
        query = select(table.c.id, table.c.position).where(
            among(table.c.id, "ids", dialect=self.uow.dialect)
        )
        for n in range(0, len(ids), CHUNK):
            found = await self.uow.session.execute(query, {"ids": ids[n : n + CHUNK]})
            held.update({i: p for i, p in found})
        return [
            row
            for row in rows
            if self.position > held.get(row["id"], -1)
            and self.position > floors.get(row["town_id"], -1)
        ]

    async def snapshot_started(self, resync_id: uuid.UUID, town_ids: Sequence[uuid.UUID]) -> None:
        table = self.models.table(self.models.Snapshot)
        rows = [
            {"resync_id": resync_id, "town_id": t, "position": self.position, "completed": False}
            for t in town_ids
        ]
        if rows:
            statement = upsert(table, self.uow.dialect, key=("resync_id", "town_id"))
            await self.uow.session.execute(statement, rows)

    async def snapshot_completed(self, resync_id: uuid.UUID) -> None:
        """Drop what the re-sync's towns hold from before its start and it did not bring."""
        snapshots = self.models.table(self.models.Snapshot)
        started = (
            await self.uow.session.execute(
                select(snapshots.c.town_id, snapshots.c.position).where(
                    snapshots.c.resync_id == resync_id
                )
            )
        ).all()
        if not started:
            raise SnapshotNotStarted(f"re-sync {resync_id} completed before its start arrived")
        for town_id, position in started:
            await self._drop_older(town_id, position)
        await self.uow.session.execute(
            snapshots.update().where(snapshots.c.resync_id == resync_id).values(completed=True)
        )

    async def _drop_older(self, town_id: uuid.UUID, position: int) -> None:
        places = self.models.table(self.models.Place)
        members = self.models.table(self.models.GridBuilding)
        gone_grids = select(places.c.id).where(
            places.c.town_id == town_id, places.c.kind == "grid", places.c.position < position
        )
        await self.uow.session.execute(delete(members).where(members.c.grid_id.in_(gone_grids)))
        for model in self.models.entities:
            table = self.models.table(model)
            await self.uow.session.execute(
                delete(table).where(table.c.town_id == town_id, table.c.position < position)
            )


async def _floors(uow: UnitOfWork, models: DirectoryModels) -> dict[uuid.UUID, int]:
    """Per town, the start of its latest re-sync: older events of that town are stale."""
    table = models.table(models.Snapshot)
    query = select(table.c.town_id, func.max(table.c.position)).group_by(table.c.town_id)
    return {town: position for town, position in await uow.session.execute(query)}


async def _record_progress(uow: UnitOfWork, models: DirectoryModels, envelope: Envelope) -> None:
    if envelope.position is None:
        return
    table = models.table(models.Stream)
    row = {
        "stream": envelope.producer,
        "position": envelope.position,
        "event_at": envelope.occurred_at,
        "applied_at": datetime.now(UTC),
    }
    statement = upsert(table, uow.dialect, key=("stream",), newer="position")
    await uow.session.execute(statement, [row])


def _place(p: registry.PlaceRecord) -> dict[str, Any]:
    return {
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


def _household(h: registry.HouseholdRecord) -> dict[str, Any]:
    return h.model_dump()


def _resident(r: registry.ResidentRecord) -> dict[str, Any]:
    return {
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
        "language": r.language,
        "opted_out": r.opted_out,
        "updated_at": datetime.now(UTC),
    }


def _zone(change: registry.ZoneChanged) -> dict[str, Any]:
    return {
        "id": change.building_id if change.unit_id is None else change.unit_id,
        "town_id": change.town_id,
        "compound_id": change.compound_id,
        "building_id": change.building_id,
        "unit_id": change.unit_id,
        "level": change.to_level,
        "since": change.at,
    }


def _person(p: registry.PersonRecord) -> dict[str, Any]:
    row = p.model_dump()
    row["building_id"] = None
    return row


def _assignment(a: registry.AssignmentRecord) -> dict[str, Any]:
    return a.model_dump()
