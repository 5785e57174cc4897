"""Named queries of broadcasts: whom a scope covers, where it is placed, what to enqueue."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update

from services.notify.broadcasts.schemas import BroadcastScope
from services.notify.contacts import service as contacts
from services.notify.models import Broadcast, BroadcastStatus, DirectoryPlace, DirectoryResident
from shared.directory.tables import PlaceRow, ResidentRow
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork

PLACE_KIND = {"compounds": "compound", "buildings": "building", "units": "unit"}


def residents_in(scope: BroadcastScope, *, town_id: uuid.UUID) -> ColumnElement[bool]:
    """The directory residents a scope covers, as a condition."""
    r = DirectoryResident
    in_town = contacts.in_town(town_id)
    in_compounds = r.compound_id.in_(scope.ids) if scope.ids else in_town
    match scope.kind:
        case "town":
            return in_town
        case "compounds":
            return and_(in_town, r.compound_id.in_(scope.ids))
        case "buildings":
            return and_(in_town, r.building_id.in_(scope.ids))
        case "units":
            return and_(in_town, r.unit_id.in_(scope.ids))
        case "residents":
            return and_(in_town, contacts.with_ids(scope.ids))
        case "zone_level":
            assert scope.zone_level is not None
            return and_(in_town, in_compounds, contacts.in_zone_level(scope.zone_level))
        case _:
            assert scope.tag is not None
            return and_(in_town, in_compounds, contacts.tagged(scope.tag))


async def count_residents(uow: UnitOfWork, where: ColumnElement[bool]) -> int:
    return int(
        await uow.session.scalar(select(func.count()).select_from(DirectoryResident).where(where))
        or 0
    )


async def places(
    uow: UnitOfWork, *, kind: str, town_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PlaceRow]:
    query = select(DirectoryPlace).where(
        DirectoryPlace.kind == kind, DirectoryPlace.town_id == town_id, DirectoryPlace.id.in_(ids)
    )
    return {p.id: p for p in await uow.session.scalars(query)}


async def residents(
    uow: UnitOfWork, *, town_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ResidentRow]:
    query = select(DirectoryResident).where(
        DirectoryResident.town_id == town_id, DirectoryResident.id.in_(ids)
    )
    return {r.id: r for r in await uow.session.scalars(query)}


async def committees_of(
    uow: UnitOfWork, compound_ids: set[uuid.UUID | None]
) -> dict[uuid.UUID, uuid.UUID | None]:
    query = select(DirectoryPlace.id, DirectoryPlace.committee_id).where(
        DirectoryPlace.kind == "compound", DirectoryPlace.id.in_(compound_ids)
    )
    return {row.id: row.committee_id for row in (await uow.session.execute(query)).all()}


async def advance(
    uow: UnitOfWork,
    broadcast_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    to: uuid.UUID | None,
    enqueued: int,
    no_phone: int,
    opted_out: int,
    done: bool,
) -> bool:
    """Move the broadcast's cursor from ``after`` to ``to`` and count the batch, if nobody
    else has: of two replicas running the enqueue job, one enqueues each batch (the row
    lock decides, and the loser's transaction is rolled back)."""
    b = Broadcast
    statement = (
        update(b)
        .where(
            b.id == broadcast_id,
            b.status == BroadcastStatus.enqueuing.value,
            b.cursor.is_(None) if after is None else b.cursor == after,
        )
        .values(
            cursor=to,
            enqueued=b.enqueued + enqueued,
            skipped_no_phone=b.skipped_no_phone + no_phone,
            skipped_opted_out=b.skipped_opted_out + opted_out,
            status=BroadcastStatus.enqueued.value if done else BroadcastStatus.enqueuing.value,
        )
        .execution_options(synchronize_session=False)
    )
    return int((await uow.session.execute(statement)).rowcount) == 1  # type: ignore[attr-defined]


async def enqueuing(uow: UnitOfWork, *, limit: int) -> list[Broadcast]:
    query = (
        select(Broadcast)
        .where(Broadcast.status == BroadcastStatus.enqueuing.value)
        .order_by(Broadcast.created_at)
        .limit(limit)
    )
    return list(await uow.session.scalars(query))


async def broadcasts_page(
    uow: UnitOfWork, *, status: str | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = where_given(select(Broadcast), (Broadcast.status, status))
    return await fetch_page(uow.session, query, Broadcast.id, cursor=cursor, limit=limit)
