"""Transfers from the town warehouse to compounds' stores: dispatched (off the warehouse's
card, earliest expiry first), then received at the compound with what arrived; the
difference is recorded on the transfer as lost in transit."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from services.logistics.models import Batch, EntryKind, Holder, Item, Transfer, TransferLine
from services.logistics.stock import repository
from services.logistics.stock.quantities import of_milli, to_milli, where
from services.logistics.stock.service import (
    MANAGE,
    catalogue_items,
    each_once,
    entry,
    fefo,
    holder,
    move,
    new_batch,
    place_of,
    shortage,
)
from services.logistics.transfers import schemas
from shared.contracts.logistics import StockDispatched, StockTransferred, TransferLineRecord
from shared.problems import Conflict, Invalid
from shared.uow import UnitOfWork


async def dispatch(uow: UnitOfWork, *, data: schemas.TransferCreate) -> Transfer:
    MANAGE.check_role(uow)
    to = await holder(uow, data.to_holder_id, field="to_holder_id")
    if to.kind != "store":
        raise Invalid.on("to_holder_id", "transfers go from the town warehouse to a compound")
    source = await holder(uow, to.town_id, field="to_holder_id")
    MANAGE.check(uow, place_of(source), field="to_holder_id")
    items = await catalogue_items(uow, source, [line.item_id for line in data.lines])
    wanted: dict[uuid.UUID, int] = {}
    for n, line in enumerate(data.lines):
        quantity = to_milli(line.quantity, field=f"lines.{n}.quantity", item=items[line.item_id])
        wanted[line.item_id] = wanted.get(line.item_id, 0) + quantity
    version = await repository.lock_holder(uow, source.id)
    batches = await repository.batches(
        uow,
        holder_id=source.id,
        item_ids=list(wanted),
        usable_on=uow.settings.today(),
    )
    takes, short = fefo(batches, wanted)
    if short:
        fields = {line.item_id: f"lines.{n}.quantity" for n, line in enumerate(data.lines)}
        raise shortage([(fields[i], items[i], left) for i, left in short.items()], source)
    now = datetime.now(UTC)
    transfer = Transfer(
        **place_of(to).columns(),
        from_holder_id=source.id,
        to_holder_id=to.id,
        status="dispatched",
        note=data.note,
        dispatched_at=now,
        dispatched_by=uow.principal.username,
    )
    uow.session.add(transfer)
    await uow.session.flush()
    for batch, quantity in takes:
        await move(uow, batch, on_hand=-quantity)
        entry(
            uow,
            holder=source,
            batch=batch,
            kind=EntryKind.transfer_out,
            quantity=-quantity,
            document_id=transfer.id,
            version=version,
            at=now,
            note=f"to {where(to)}",
        )
        uow.session.add(
            TransferLine(
                **place_of(to).columns(),
                transfer_id=transfer.id,
                item_id=batch.item_id,
                from_batch_id=batch.id,
                origin_id=batch.origin_id,
                batch=batch.batch,
                expires_on=batch.expires_on,
                dispatched=quantity,
                received=None,
            )
        )
    await uow.session.flush()
    lines = await lines_of(uow, transfer.id)
    uow.emit(
        StockDispatched(
            transfer_id=transfer.id,
            from_holder_id=source.id,
            to_holder_id=to.id,
            town_id=to.town_id,
            compound_id=to.id,
            dispatched_at=now,
            lines=[_record(line) for line in lines],
            stock_version=version,
        ),
        compound_id=to.id,
    )
    return transfer


async def lines_of(uow: UnitOfWork, transfer_id: uuid.UUID) -> list[TransferLine]:
    query = (
        select(TransferLine)
        .where(TransferLine.transfer_id == transfer_id)
        .order_by(TransferLine.id)
        .execution_options(**repository.FRESH)
    )
    return list(await uow.session.scalars(query))


def _record(line: TransferLine) -> TransferLineRecord:
    received = None if line.received is None else float(of_milli(line.received))
    lost = None if line.received is None else float(of_milli(line.dispatched - line.received))
    return TransferLineRecord(
        line_id=line.id,
        item_id=line.item_id,
        batch=line.batch,
        expires_on=line.expires_on,
        dispatched=float(of_milli(line.dispatched)),
        received=received,
        lost=lost,
    )


def _received(
    lines: list[TransferLine], data: schemas.TransferReceive, items: dict[uuid.UUID, Item]
) -> dict[uuid.UUID, int]:
    """What arrived per line: as stated, or all of it; 422 naming a line that is not the
    transfer's or states more than was sent (a surplus is recorded as found, an adjustment
    of its own)."""
    each_once(
        [stated.line_id for stated in data.lines],
        key="line_id",
        rule="each line is received once per receipt",
    )
    by_id = {line.id: line for line in lines}
    arrived = {line.id: line.dispatched for line in lines}
    for n, stated in enumerate(data.lines):
        line = by_id.get(stated.line_id)
        if line is None:
            raise Invalid.on(f"lines.{n}.line_id", f"line {stated.line_id} is not this transfer's")
        field = f"lines.{n}.received"
        quantity = to_milli(stated.received, field=field, item=items[line.item_id])
        if quantity > line.dispatched:
            sent = of_milli(line.dispatched)
            raise Invalid.on(
                f"lines.{n}.received",
                f"more than the {sent} dispatched: receive what was sent, and record what came "
                "beyond it as found (an adjustment)",
            )
        arrived[line.id] = quantity
    return arrived


async def _batch_for(uow: UnitOfWork, to: Holder, line: TransferLine, at: datetime) -> Batch:
    """The store's batch of the same origin (an earlier transfer of it), or a new one."""
    query = select(Batch).where(Batch.holder_id == to.id, Batch.origin_id == line.origin_id)
    found = await uow.session.scalar(query.execution_options(**repository.FRESH))
    if found is not None:
        return found
    made = new_batch(
        to,
        item_id=line.item_id,
        origin_id=line.origin_id,
        batch=line.batch,
        expires_on=line.expires_on,
        at=at,
    )
    uow.session.add(made)
    await uow.session.flush()
    return made


async def receive(
    uow: UnitOfWork, *, transfer_id: uuid.UUID, data: schemas.TransferReceive
) -> Transfer:
    transfer = await uow.get(Transfer, transfer_id, what="transfer")
    to = await holder(uow, transfer.to_holder_id)
    MANAGE.check(uow, place_of(to))
    version = await repository.lock_holder(uow, to.id)
    await uow.session.refresh(transfer)
    if transfer.status == "received":
        raise Conflict(f"this transfer was received at {where(to)} already")
    lines = await lines_of(uow, transfer.id)
    items = await repository.items(uow, [line.item_id for line in lines])
    arrived = _received(lines, data, items)
    # Never received before it was dispatched, even when the replica that dispatched it had
    # a clock a moment ahead of this one's.
    now = max(datetime.now(UTC), transfer.dispatched_at)
    for line in lines:
        line.received = arrived[line.id]
        if line.received == 0:
            continue
        batch = await _batch_for(uow, to, line, now)
        await move(uow, batch, on_hand=line.received)
        entry(
            uow,
            holder=to,
            batch=batch,
            kind=EntryKind.transfer_in,
            quantity=line.received,
            document_id=transfer.id,
            version=version,
            at=now,
            note=data.note,
        )
    transfer.status, transfer.received_at = "received", now
    transfer.received_by = uow.principal.username
    await uow.session.flush()
    uow.emit(
        StockTransferred(
            transfer_id=transfer.id,
            from_holder_id=transfer.from_holder_id,
            to_holder_id=to.id,
            town_id=to.town_id,
            compound_id=to.id,
            received_at=now,
            lines=[_record(line) for line in lines],
            stock_version=version,
        ),
        compound_id=to.id,
    )
    return transfer


async def out(uow: UnitOfWork, transfer: Transfer) -> schemas.TransferOut:
    lines = await lines_of(uow, transfer.id)
    return schemas.TransferOut(
        id=transfer.id,
        from_holder_id=transfer.from_holder_id,
        to_holder_id=transfer.to_holder_id,
        status=transfer.status,
        note=transfer.note,
        dispatched_at=transfer.dispatched_at,
        dispatched_by=transfer.dispatched_by,
        received_at=transfer.received_at,
        received_by=transfer.received_by,
        lines=[
            schemas.TransferLineOut(
                id=line.id,
                item_id=line.item_id,
                batch=line.batch,
                expires_on=line.expires_on,
                dispatched=of_milli(line.dispatched),
                received=None if line.received is None else of_milli(line.received),
                lost=None if line.received is None else of_milli(line.dispatched - line.received),
            )
            for line in lines
        ],
    )
