"""Named queries of the stock ledger. Every change to a batch's balance goes through
:func:`shift`: one conditional UPDATE that refuses to take a balance below zero or below
what is reserved, whatever the service believed it read."""

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, select, true, update

from services.logistics.models import Batch, Entry, Holder, Item, Reservation
from shared.authz import MANAGERS, Role, ScopeKind, policy
from shared.pagination import fetch_page, where_given
from shared.problems import NotFound
from shared.uow import UnitOfWork

# Who reads the stores (card, balances, reservations, transfers, donations): those who keep
# them and the leaders who print pick lists, not volunteers (they see their own errands).
READ = policy("stock", "read", *MANAGERS, Role.grid_leader, Role.building_leader)
# A lock a change to a holder's stock takes first (see ``Holder``).
FRESH: dict[str, Any] = {"populate_existing": True}


async def lock_holder(uow: UnitOfWork, holder_id: uuid.UUID) -> int:
    """Raise the holder's version and return it. On PostgreSQL the UPDATE holds the row's
    lock until the commit: a second operator's change waits here, then reads the balances
    the first one left."""
    statement = (
        update(Holder)
        .where(Holder.id == holder_id)
        .values(version=Holder.version + 1)
        .returning(Holder.version)
        .execution_options(synchronize_session=False)
    )
    version = (await uow.session.execute(statement)).scalar_one()
    return int(version)


async def batches(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID,
    item_ids: Sequence[uuid.UUID] | None = None,
    usable_on: date | None = None,
) -> list[Batch]:
    """The holder's batches, earliest expiry first (no expiry last), then oldest first:
    the order reservations and transfers take them in (FEFO). ``usable_on`` leaves out
    batches expired by then."""
    query = select(Batch).where(Batch.holder_id == holder_id)
    if item_ids is not None:
        query = query.where(Batch.item_id.in_(item_ids))
    if usable_on is not None:
        query = query.where((Batch.expires_on.is_(None)) | (Batch.expires_on >= usable_on))
    query = query.order_by(
        Batch.item_id, Batch.expires_on.asc().nulls_last(), Batch.received_at, Batch.id
    )
    return list(await uow.session.scalars(query.execution_options(**FRESH)))


async def batch(uow: UnitOfWork, batch_id: uuid.UUID, *, field: str) -> Batch:
    query = select(Batch).where(Batch.id == batch_id).execution_options(**FRESH)
    found = await uow.session.scalar(query)
    if found is None:
        raise NotFound.on(field, f"no batch {batch_id} in your scope")
    return found


async def shift(
    uow: UnitOfWork, batch_id: uuid.UUID, *, on_hand: int = 0, reserved: int = 0
) -> bool:
    """Change a batch's balance if it stays whole (reserved ≥ 0, on hand ≥ reserved);
    whether it did."""
    statement = (
        update(Batch)
        .where(
            Batch.id == batch_id,
            Batch.reserved + reserved >= 0,
            Batch.on_hand + on_hand >= Batch.reserved + reserved,
        )
        .values(on_hand=Batch.on_hand + on_hand, reserved=Batch.reserved + reserved)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await uow.session.execute(statement))
    return result.rowcount == 1


async def items(uow: UnitOfWork, item_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Item]:
    found = await uow.session.scalars(select(Item).where(Item.id.in_(set(item_ids))))
    return {item.id: item for item in found}


async def totals(uow: UnitOfWork, *, holder_id: uuid.UUID) -> dict[uuid.UUID, tuple[int, int]]:
    """On hand and reserved per item at the holder."""
    query = (
        select(Batch.item_id, func.sum(Batch.on_hand), func.sum(Batch.reserved))
        .where(Batch.holder_id == holder_id)
        .group_by(Batch.item_id)
    )
    rows = (await uow.session.execute(query)).all()
    return {item_id: (int(on_hand or 0), int(reserved or 0)) for item_id, on_hand, reserved in rows}


def in_stores_seen(uow: UnitOfWork, compound_id: Any) -> ColumnElement[bool]:
    """Rows of stores the caller sees, and of the town warehouse only for the town's own
    roles: the warehouse's card is the town office's business (a committee sees what it is
    sent, as transfers), and it would otherwise show every committee what went to the
    others. A role that may not read stock at all is refused here (403), the one check every
    stock read passes through."""
    READ.check_role(uow)
    if uow.scope.kind in (ScopeKind.system, ScopeKind.towns):
        return true()
    return compound_id.is_not(None)


async def entries_page(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID | None,
    item_id: uuid.UUID | None,
    kind: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """The stock card's lines the caller may see, oldest first."""
    query = where_given(
        select(Entry).where(in_stores_seen(uow, Entry.compound_id)),
        (Entry.holder_id, holder_id),
        (Entry.item_id, item_id),
        (Entry.kind, kind),
    )
    return await fetch_page(uow.session, query, Entry.id, cursor=cursor, limit=limit)


async def reservations_page(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID | None,
    reference_id: uuid.UUID | None,
    item_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    query = where_given(
        select(Reservation).where(in_stores_seen(uow, Reservation.compound_id)),
        (Reservation.holder_id, holder_id),
        (Reservation.reference_id, reference_id),
        (Reservation.item_id, item_id),
    )
    return await fetch_page(uow.session, query, Reservation.id, cursor=cursor, limit=limit)
