"""The stock ledger: holders (the town warehouse, compounds' stores), receipts, adjustments,
physical counts, and the rules every movement obeys.

Every change to a holder's stock locks the holder first (:func:`repository.lock_holder`),
then reads the balances, decides, and moves each batch with a conditional UPDATE
(:func:`repository.shift`); the table's CHECK constraints are the last guard. An overdraw is
refused with a 409 naming each short item, by how much and where, never clipped."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import select

from services.logistics.models import (
    AdjustmentReason,
    Batch,
    Count,
    Entry,
    EntryKind,
    Holder,
    Item,
    Receipt,
    StockSource,
    directory,
)
from services.logistics.stock import repository, schemas
from services.logistics.stock.quantities import amount, of_milli, to_milli, where, whole
from services.logistics.stock.repository import in_stores_seen
from shared.authz import MANAGERS, Place, policy
from shared.contracts.logistics import (
    DonationReceived,
    StockAdjusted,
    StockCounted,
    StockLine,
    StockReceived,
)
from shared.db import insert_ignoring_duplicates, table_of
from shared.ids import new_id
from shared.problems import Conflict, Invalid, NotFound
from shared.uow import UnitOfWork

# The town office runs the warehouse; committee staff their compounds' stores. Leaders read
# their compound's balances (the scope filters reads; ``repository.READ``) and change nothing.
MANAGE = policy("stock", "manage", *MANAGERS)
HOLDER_KINDS = {"town": "warehouse", "compound": "store"}
DECREASES = {AdjustmentReason.lost, AdjustmentReason.damaged, AdjustmentReason.expired}


def place_of(holder: Holder) -> Place:
    return Place.of(holder)


async def holder(uow: UnitOfWork, holder_id: uuid.UUID, *, field: str = "holder_id") -> Holder:
    """The holder ``holder_id`` names (a town: its warehouse; a compound: its store), made
    on first use from the directory; 404 naming the field when the caller cannot see it."""
    query = select(Holder).where(Holder.id == holder_id)
    found = await uow.session.scalar(query)
    if found is not None:
        return found
    Place_ = directory.models.Place
    place = await uow.session.scalar(
        select(Place_).where(Place_.id == holder_id, Place_.kind.in_(HOLDER_KINDS))
    )
    if place is None:
        raise NotFound.on(field, f"no town or compound {holder_id} in your scope")
    compound = place.kind == "compound"
    row = {
        "id": place.id,
        "kind": HOLDER_KINDS[place.kind],
        "code": place.code,
        "name": place.name,
        "version": 0,
        "town_id": place.town_id,
        "committee_id": place.committee_id if compound else None,
        "compound_id": place.id if compound else None,
        "building_id": None,
    }
    # Two first receipts at once: one row, whoever comes second finds it.
    await uow.session.execute(insert_ignoring_duplicates(table_of(Holder), uow.dialect), [row])
    made = await uow.session.scalar(query)
    assert made is not None
    return made


async def managed_holder(
    uow: UnitOfWork, holder_id: uuid.UUID, *, field: str = "holder_id"
) -> Holder:
    MANAGE.check_role(uow)
    found = await holder(uow, holder_id, field=field)
    MANAGE.check(uow, place_of(found), field=field)
    return found


async def catalogue_items(
    uow: UnitOfWork, holder: Holder, item_ids: Sequence[uuid.UUID], *, field: str = "lines"
) -> dict[uuid.UUID, Item]:
    """The items named, from the holder's town catalogue; 404 naming each line that names
    another."""
    found = await repository.items(uow, item_ids)
    errors = [
        {"field": f"{field}.{n}.item_id", "message": f"no item {item_id} in your scope"}
        for n, item_id in enumerate(item_ids)
        if item_id not in found or found[item_id].town_id != holder.town_id
    ]
    if errors:
        raise NotFound(errors[0]["message"], errors=errors)
    return found


def shortage(shorts: Sequence[tuple[str, Item, int]], holder: Holder) -> Conflict:
    """409: each short item, by how much, where (``field`` names the request line)."""
    messages = [f"short by {amount(short, item)} at {where(holder)}" for _, item, short in shorts]
    errors: list[dict[str, object]] = [
        {
            "field": field,
            "message": message,
            "item_id": str(item.id),
            "holder_id": str(holder.id),
            "short": float(of_milli(short)),
            "unit": item.unit,
        }
        for (field, item, short), message in zip(shorts, messages, strict=True)
    ]
    return Conflict("not enough stock: " + "; ".join(messages), errors=errors)


def available(batch: Batch) -> int:
    return batch.on_hand - batch.reserved


def fefo(
    batches: Sequence[Batch], wanted: dict[uuid.UUID, int]
) -> tuple[list[tuple[Batch, int]], dict[uuid.UUID, int]]:
    """What to take from which batch (in the order given: FEFO), and what is short per
    item, for quantities per item in thousandths."""
    takes, short = [], {}
    by_item: dict[uuid.UUID, list[Batch]] = defaultdict(list)
    for batch in batches:
        by_item[batch.item_id].append(batch)
    for item_id, quantity in wanted.items():
        left = quantity
        for batch in by_item[item_id]:
            take = min(left, available(batch))
            if take > 0:
                takes.append((batch, take))
                left -= take
        if left > 0:
            short[item_id] = left
    return takes, short


async def move(uow: UnitOfWork, batch: Batch, *, on_hand: int = 0, reserved: int = 0) -> None:
    """Move a batch's balance (locked holder: this cannot fail unless a bug let two changes
    race, and then it refuses rather than go negative)."""
    if not await repository.shift(uow, batch.id, on_hand=on_hand, reserved=reserved):
        raise Conflict(f"the balance of batch {batch.batch or batch.id} changed; try again")


def entry(
    uow: UnitOfWork,
    *,
    holder: Holder,
    batch: Batch,
    kind: EntryKind,
    quantity: int,
    document_id: uuid.UUID,
    version: int,
    at: datetime,
    **more: object,
) -> Entry:
    """Append a line to the holder's stock card."""
    line = Entry(
        **place_of(holder).columns(),
        holder_id=holder.id,
        item_id=batch.item_id,
        batch_id=batch.id,
        kind=kind.value,
        quantity=quantity,
        document_id=document_id,
        holder_version=version,
        at=at,
        recorded_by=uow.principal.username,
        **more,
    )
    uow.session.add(line)
    return line


def new_batch(
    holder: Holder,
    *,
    item_id: uuid.UUID,
    origin_id: uuid.UUID | None,
    batch: str,
    expires_on: date | None,
    at: datetime,
) -> Batch:
    batch_id = new_id()
    return Batch(
        **place_of(holder).columns(),
        id=batch_id,
        holder_id=holder.id,
        item_id=item_id,
        origin_id=origin_id or batch_id,
        batch=batch,
        expires_on=expires_on,
        received_at=at,
        on_hand=0,
        reserved=0,
    )


def stock_line(batch: Batch, quantity: int) -> StockLine:
    return StockLine(
        item_id=batch.item_id,
        batch_id=batch.id,
        batch=batch.batch,
        expires_on=batch.expires_on,
        quantity=float(of_milli(quantity)),
    )


# ---- receipts -------------------------------------------------------------------------


def _check_receipt(
    data: schemas.ReceiptCreate, items: dict[uuid.UUID, Item], *, today: date
) -> None:
    """A donation names its donor; a perishable line gives its expiry, and no line expired
    before ``today`` (the town office's date): reservations skip expired batches, so they
    would sit on the card as stock nobody can hand out. Judged by today, not by the
    receipt's stated time, which backdated would let expired goods pass."""
    errors = []
    if data.source == StockSource.donation and not data.donor:
        errors.append({"field": "donor", "message": "a donation needs its donor"})
    for n, line in enumerate(data.lines):
        name = items[line.item_id].name
        if items[line.item_id].perishable and line.expires_on is None:
            errors.append(
                {
                    "field": f"lines.{n}.expires_on",
                    "message": f"{name} is perishable: give its expiry",
                }
            )
        elif line.expires_on is not None and line.expires_on < today:
            errors.append(
                {
                    "field": f"lines.{n}.expires_on",
                    "message": f"{name} already expired on {line.expires_on.isoformat()}, "
                    f"before today ({today.isoformat()}), whenever it was received: expired "
                    "goods are not stock to hand out; leave them off the receipt",
                }
            )
    if errors:
        raise Invalid(errors[0]["message"], errors=errors)


def _check_received_at(
    received_at: datetime | None, *, earliest: datetime, latest: datetime
) -> None:
    """Goods are on the card from when they arrived, never before: a stated time ahead of our
    clock beyond the clocks' tolerance (settings' ``clock_skew``) is refused, else they could
    be sent on (a transfer, an issue) before they came. Nor years back (settings'
    ``backdate_days``; a store has no creation time to judge by, its row being made on first
    use): such a receipt would head the stock card and the donation register."""
    if received_at is None:
        return
    if received_at > latest:
        raise Invalid.on(
            "received_at",
            f"received_at {received_at.isoformat()} is in the future: record goods once they "
            "have arrived",
        )
    if received_at < earliest:
        raise Invalid.on(
            "received_at",
            f"received_at {received_at.isoformat()} is before {earliest.date().isoformat()}, "
            "further back than a receipt may be entered late: check its year",
        )


async def receive(uow: UnitOfWork, *, data: schemas.ReceiptCreate) -> tuple[Receipt, list[Entry]]:
    """Goods arrive at a holder: one new batch per line, on the card as a receipt."""
    found = await managed_holder(uow, data.holder_id)
    items = await catalogue_items(uow, found, [line.item_id for line in data.lines])
    now = datetime.now(UTC)
    _check_receipt(data, items, today=uow.settings.today())
    _check_received_at(
        data.received_at,
        earliest=uow.settings.earliest_stated(),
        latest=uow.settings.latest_stated(),
    )
    quantities = [
        to_milli(line.quantity, field=f"lines.{n}.quantity", item=items[line.item_id])
        for n, line in enumerate(data.lines)
    ]
    version = await repository.lock_holder(uow, found.id)
    receipt = Receipt(
        **place_of(found).columns(),
        holder_id=found.id,
        source=data.source.value,
        donor=data.donor,
        donor_contact=data.donor_contact,
        note=data.note,
        received_at=data.received_at or now,
        recorded_by=uow.principal.username,
    )
    uow.session.add(receipt)
    await uow.session.flush()
    entries, lines = [], []
    for line, quantity in zip(data.lines, quantities, strict=True):
        batch = new_batch(
            found,
            item_id=line.item_id,
            origin_id=None,
            batch=line.batch or (line.expires_on.isoformat() if line.expires_on else ""),
            expires_on=line.expires_on,
            at=receipt.received_at,
        )
        batch.on_hand = quantity
        uow.session.add(batch)
        await uow.session.flush()
        entries.append(
            entry(
                uow,
                holder=found,
                batch=batch,
                kind=EntryKind.receipt,
                quantity=quantity,
                document_id=receipt.id,
                version=version,
                at=receipt.received_at,
            )
        )
        lines.append(stock_line(batch, quantity))
    await uow.session.flush()
    _emit_receipt(uow, found, receipt, lines, version)
    return receipt, entries


def _emit_receipt(
    uow: UnitOfWork, found: Holder, receipt: Receipt, lines: list[StockLine], version: int
) -> None:
    common = {
        "receipt_id": receipt.id,
        "holder_id": found.id,
        "town_id": found.town_id,
        "compound_id": found.compound_id,
        "received_at": receipt.received_at,
        "lines": lines,
        "stock_version": version,
    }
    uow.emit(StockReceived(**common, source=receipt.source), compound_id=found.compound_id)
    if receipt.source == StockSource.donation:
        uow.emit(
            DonationReceived(**common, donor=receipt.donor or ""), compound_id=found.compound_id
        )


# ---- adjustments and counts -----------------------------------------------------------


def _signed(line: schemas.AdjustmentLine, n: int) -> int:
    change = to_milli(line.quantity, field=f"lines.{n}.quantity")
    field = f"lines.{n}.quantity"
    if change == 0:
        raise Invalid.on(field, "an adjustment of nothing changes nothing")
    if line.reason in DECREASES and change > 0:
        raise Invalid.on(field, f"{line.reason.value} stock is taken off: give a negative quantity")
    if line.reason == AdjustmentReason.found and change < 0:
        raise Invalid.on(field, "found stock is added: give a positive quantity")
    return change


async def _adjusted_batches(
    uow: UnitOfWork, found: Holder, data: schemas.AdjustmentCreate
) -> list[Batch]:
    """The batch of each line: the one named, or for found goods of no batch a new one."""
    chosen = []
    for n, line in enumerate(data.lines):
        if line.batch_id is not None:
            batch = await repository.batch(uow, line.batch_id, field=f"lines.{n}.batch_id")
            if batch.holder_id != found.id:
                raise NotFound.on(
                    f"lines.{n}.batch_id", f"no batch {line.batch_id} at {where(found)}"
                )
            if line.item_id is not None and line.item_id != batch.item_id:
                # Both named and they disagree: which was meant is not ours to guess.
                named = await repository.items(uow, [batch.item_id])
                raise Invalid.on(
                    f"lines.{n}.item_id",
                    f"batch {line.batch_id} is of {named[batch.item_id].name}, not item "
                    f"{line.item_id}: name the batch of the item you mean, or leave item_id out",
                )
            chosen.append(batch)
            continue
        if line.reason != AdjustmentReason.found or line.item_id is None:
            raise Invalid.on(
                f"lines.{n}.batch_id", "name the batch (only found goods may name an item instead)"
            )
        items = await catalogue_items(uow, found, [line.item_id])
        if items[line.item_id].perishable and line.expires_on is None:
            raise Invalid.on(f"lines.{n}.expires_on", "perishable goods found need their expiry")
        batch = new_batch(
            found,
            item_id=line.item_id,
            origin_id=None,
            batch=line.batch or "found",
            expires_on=line.expires_on,
            at=datetime.now(UTC),
        )
        uow.session.add(batch)
        await uow.session.flush()
        chosen.append(batch)
    return chosen


async def adjust(uow: UnitOfWork, *, data: schemas.AdjustmentCreate) -> list[Entry]:
    """Lost, damaged, expired, found, corrected: each line a signed change to one batch,
    with its reason. Nothing is taken below what is on hand and not reserved."""
    found = await managed_holder(uow, data.holder_id)
    changes = [_signed(line, n) for n, line in enumerate(data.lines)]
    version = await repository.lock_holder(uow, found.id)
    batches = await _adjusted_batches(uow, found, data)
    items = await repository.items(uow, [b.item_id for b in batches])
    for n, (batch, change) in enumerate(zip(batches, changes, strict=True)):
        whole(change, items[batch.item_id], field=f"lines.{n}.quantity")
    _refuse_overdraw(found, batches, changes, items)
    document_id, now = new_id(), datetime.now(UTC)
    entries, lines = [], []
    for line, batch, change in zip(data.lines, batches, changes, strict=True):
        await move(uow, batch, on_hand=change)
        entries.append(
            entry(
                uow,
                holder=found,
                batch=batch,
                kind=EntryKind.adjustment,
                quantity=change,
                reason=line.reason.value,
                document_id=document_id,
                version=version,
                at=now,
                note=data.note,
            )
        )
        lines.append(stock_line(batch, change).model_copy(update={"reason": line.reason.value}))
    await uow.session.flush()
    uow.emit(
        StockAdjusted(
            document_id=document_id,
            holder_id=found.id,
            town_id=found.town_id,
            compound_id=found.compound_id,
            at=now,
            lines=lines,
            stock_version=version,
        ),
        compound_id=found.compound_id,
    )
    return entries


def _refuse_overdraw(
    found: Holder, batches: Sequence[Batch], changes: Sequence[int], items: dict[uuid.UUID, Item]
) -> None:
    """Taking more off a batch than is on hand and unreserved: 409 by how much."""
    taken: dict[uuid.UUID, int] = {}
    shorts = []
    for n, (batch, change) in enumerate(zip(batches, changes, strict=True)):
        if change >= 0:
            continue
        taken[batch.id] = taken.get(batch.id, 0) - change
        short = taken[batch.id] - available(batch)
        if short > 0:
            shorts.append((f"lines.{n}.quantity", items[batch.item_id], short))
    if shorts:
        raise shortage(shorts, found)


async def _batches_at(
    uow: UnitOfWork, found: Holder, batch_ids: Sequence[uuid.UUID]
) -> list[Batch]:
    """The batches named (``lines.N.batch_id``), each once, all at the holder; 404 or 422
    naming the line otherwise."""
    each_once(batch_ids, key="batch_id", rule="each batch is counted once per count")
    batches = []
    for n, batch_id in enumerate(batch_ids):
        field = f"lines.{n}.batch_id"
        batch = await repository.batch(uow, batch_id, field=field)
        if batch.holder_id != found.id:
            raise NotFound.on(field, f"no batch {batch_id} at {where(found)}")
        batches.append(batch)
    return batches


def each_once(ids: Sequence[uuid.UUID], *, key: str, rule: str) -> None:
    """422 naming the first line that repeats an earlier one (``lines.N.<key>``): a row
    named twice in one document would otherwise count twice, or the last would win."""
    first: dict[uuid.UUID, int] = {}
    for n, value in enumerate(ids):
        if value in first:
            raise Invalid.on(f"lines.{n}.{key}", f"{rule}: line {n} repeats line {first[value]}")
        first[value] = n


async def count(uow: UnitOfWork, *, data: schemas.CountCreate) -> Count:
    """A physical count, batch by batch: each difference from the card becomes an
    adjustment (count_correction). Counting less than is reserved is refused: the
    reservations must be released first, or the plans would promise what is not there."""
    found = await managed_holder(uow, data.holder_id)
    version = await repository.lock_holder(uow, found.id)
    batches = await _batches_at(uow, found, [line.batch_id for line in data.lines])
    counted = [
        to_milli(line.counted, field=f"lines.{n}.counted") for n, line in enumerate(data.lines)
    ]
    items = await repository.items(uow, [b.item_id for b in batches])
    for n, (batch, number) in enumerate(zip(batches, counted, strict=True)):
        whole(number, items[batch.item_id], field=f"lines.{n}.counted")
    _refuse_below_reserved(found, batches, counted, items)
    record = Count(
        **place_of(found).columns(),
        holder_id=found.id,
        note=data.note,
        counted_at=datetime.now(UTC),
        counted_by=uow.principal.username,
        lines=[
            {"batch_id": str(b.id), "item_id": str(b.item_id), "expected": b.on_hand, "counted": c}
            for b, c in zip(batches, counted, strict=True)
        ],
    )
    uow.session.add(record)
    await uow.session.flush()
    lines = [
        await _correct(uow, found, batch, number - batch.on_hand, record=record, version=version)
        for batch, number in zip(batches, counted, strict=True)
    ]
    await uow.session.flush()
    uow.emit(
        StockCounted(
            count_id=record.id,
            holder_id=found.id,
            town_id=found.town_id,
            compound_id=found.compound_id,
            at=record.counted_at,
            differences=lines,
            stock_version=version,
        ),
        compound_id=found.compound_id,
    )
    return record


async def _correct(
    uow: UnitOfWork, found: Holder, batch: Batch, difference: int, *, record: Count, version: int
) -> StockLine:
    """A counted batch's difference on the card (nothing when the card was right)."""
    if difference != 0:
        await move(uow, batch, on_hand=difference)
        entry(
            uow,
            holder=found,
            batch=batch,
            kind=EntryKind.adjustment,
            quantity=difference,
            reason=AdjustmentReason.count_correction.value,
            document_id=record.id,
            version=version,
            at=record.counted_at,
            note=record.note,
        )
    return stock_line(batch, difference)


def _refuse_below_reserved(
    found: Holder, batches: Sequence[Batch], counted: Sequence[int], items: dict[uuid.UUID, Item]
) -> None:
    errors = []
    for n, (batch, number) in enumerate(zip(batches, counted, strict=True)):
        if number < batch.reserved:
            item = items[batch.item_id]
            errors.append(
                {
                    "field": f"lines.{n}.counted",
                    "message": f"{amount(number, item)} counted in batch {batch.batch or batch.id} "
                    f"at {where(found)}, but {amount(batch.reserved, item)} are reserved: "
                    f"release {amount(batch.reserved - number, item)} first",
                }
            )
    if errors:
        raise Conflict(errors[0]["message"], errors=errors)


# ---- balances -------------------------------------------------------------------------


async def balances(
    uow: UnitOfWork, *, holder_id: uuid.UUID | None, item_id: uuid.UUID | None
) -> list[schemas.Balance]:
    """On hand, reserved and available per item and holder the caller sees, by batch
    (earliest expiry first); batches with nothing left are left out. A batch past its expiry
    (the town office's date, as reservations judge it) is available to nobody: counted as
    expired, so the balance promises no more than a plan can take."""
    today = uow.settings.today()
    query = (
        select(Batch, Holder, Item)
        .join(Holder, Holder.id == Batch.holder_id)
        .join(Item, Item.id == Batch.item_id)
        .where(Batch.on_hand > 0, in_stores_seen(uow, Batch.compound_id))
        .order_by(Holder.code, Item.name, Batch.expires_on.asc().nulls_last(), Batch.received_at)
    )
    if holder_id is not None:
        query = query.where(Batch.holder_id == holder_id)
    if item_id is not None:
        query = query.where(Batch.item_id == item_id)
    found: dict[tuple[uuid.UUID, uuid.UUID], schemas.Balance] = {}
    for batch, owner, item in (await uow.session.execute(query)).all():
        key = (owner.id, item.id)
        if key not in found:
            found[key] = schemas.Balance(
                holder_id=owner.id,
                holder=where(owner),
                item_id=item.id,
                item=item.name,
                unit=item.unit,
                on_hand=of_milli(0),
                reserved=of_milli(0),
                available=of_milli(0),
                expired=of_milli(0),
                batches=[],
            )
        balance = found[key]
        expired = batch.expires_on is not None and batch.expires_on < today
        free = 0 if expired else available(batch)
        balance.batches.append(
            schemas.BatchBalance(
                batch_id=batch.id,
                batch=batch.batch,
                expires_on=batch.expires_on,
                expired=expired,
                on_hand=of_milli(batch.on_hand),
                reserved=of_milli(batch.reserved),
                available=of_milli(free),
            )
        )
        balance.on_hand += of_milli(batch.on_hand)
        balance.reserved += of_milli(batch.reserved)
        balance.available += of_milli(free)
        if expired:
            balance.expired += of_milli(batch.on_hand)
    return list(found.values())
