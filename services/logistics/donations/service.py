"""The donation register: what arrived from whom (receipts from donors), and where it
went, traced by batch. A donated batch keeps its origin through transfers, so its issues at
any store (to a plan or request, and the building), what is left in stock, what was lost in
transit and what was written off are all found by that origin."""

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import IO

from sqlalchemy import func, select

from services.logistics.donations import repository, schemas
from services.logistics.models import (
    Batch,
    Entry,
    EntryKind,
    Holder,
    Item,
    Receipt,
    Transfer,
    TransferLine,
    directory,
)
from services.logistics.stock.quantities import of_milli, where
from services.logistics.stock.repository import in_stores_seen
from shared.problems import Invalid
from shared.spreadsheets import Cell, SheetFormat, write_sheet
from shared.uow import UnitOfWork

COLUMNS = (
    "received_at",
    "donor",
    "donor_contact",
    "received_at_holder",
    "item",
    "unit",
    "batch",
    "expires_on",
    "donated",
    "went_to",
    "where",
    "reference_kind",
    "reference",
    "building",
    "quantity",
)


async def register(uow: UnitOfWork, receipts: Sequence[Receipt]) -> list[schemas.DonationOut]:
    """The donations with their lines and where each went, in clear (the endpoint's
    presenter masks the contacts)."""
    if not receipts:
        return []
    origins = await _origins(uow, [r.id for r in receipts])
    went = await _went(uow, [o.batch.id for o in origins])
    holders = await _holders(uow, {r.holder_id for r in receipts} | went.holder_ids)
    lines: dict[uuid.UUID, list[schemas.DonatedLine]] = defaultdict(list)
    for o in origins:
        lines[o.receipt_id].append(
            schemas.DonatedLine(
                batch_id=o.batch.id,
                item_id=o.item.id,
                item=o.item.name,
                unit=o.item.unit,
                batch=o.batch.batch,
                expires_on=o.batch.expires_on,
                quantity=of_milli(o.received),
                went_to=went.of(o.batch.id, holders),
            )
        )
    return [
        schemas.DonationOut(
            receipt_id=r.id,
            holder_id=r.holder_id,
            holder=holders.get(r.holder_id, str(r.holder_id)),
            donor=r.donor or "",
            donor_contact=r.donor_contact,
            received_at=r.received_at,
            note=r.note,
            lines=lines[r.id],
        )
        for r in receipts
    ]


@dataclass(frozen=True)
class _Origin:
    """A donated batch as received: its receipt, item and quantity."""

    batch: Batch
    item: Item
    receipt_id: uuid.UUID
    received: int


async def _origins(uow: UnitOfWork, receipt_ids: list[uuid.UUID]) -> list[_Origin]:
    """Each donated batch as received (its receipt entry), with its item."""
    query = (
        select(Batch, Item, Entry.document_id, Entry.quantity)
        .join(Entry, Entry.batch_id == Batch.id)
        .join(Item, Item.id == Batch.item_id)
        .where(Entry.kind == EntryKind.receipt.value, Entry.document_id.in_(receipt_ids))
        .order_by(Entry.id)
    )
    return [_Origin(*row) for row in (await uow.session.execute(query)).all()]


@dataclass(frozen=True)
class _Issued:
    """What goods were issued for: a plan or request, and the building they went to."""

    reference_kind: str | None
    reference_id: uuid.UUID | None
    reference_label: str | None
    to_building_id: uuid.UUID | None


class _Went:
    """Where the batches of some origins went, by origin."""

    def __init__(self) -> None:
        self.rows: dict[
            uuid.UUID, list[tuple[schemas.Destination, uuid.UUID, int, _Issued | None]]
        ] = defaultdict(list)
        self.holder_ids: set[uuid.UUID] = set()
        self.buildings: dict[uuid.UUID, str] = {}

    def add(
        self,
        origin: uuid.UUID,
        kind: schemas.Destination,
        holder_id: uuid.UUID,
        quantity: int,
        e: _Issued | None = None,
    ) -> None:
        if quantity:
            self.rows[origin].append((kind, holder_id, quantity, e))
            self.holder_ids.add(holder_id)

    def of(self, origin: uuid.UUID, holders: dict[uuid.UUID, str]) -> list[schemas.WentTo]:
        return [
            schemas.WentTo(
                kind=kind,
                holder=holders.get(holder_id, str(holder_id)),
                quantity=of_milli(quantity),
                reference_kind=e.reference_kind if e else None,
                reference_id=e.reference_id if e else None,
                reference_label=e.reference_label if e else None,
                building_id=e.to_building_id if e else None,
                building=self.buildings.get(e.to_building_id) if e and e.to_building_id else None,
            )
            for kind, holder_id, quantity, e in self.rows[origin]
        ]


async def _went(uow: UnitOfWork, origins: list[uuid.UUID]) -> _Went:
    went = _Went()
    # Issued: summed per store, plan or request, and building. A plan issues a line per
    # household it delivered to; a donor is told the plan and the building, in a few rows
    # however many households there were.
    to = (Entry.holder_id, Entry.reference_kind, Entry.reference_id, Entry.to_building_id)
    issues = (
        select(Batch.origin_id, *to, func.min(Entry.reference_label), func.sum(Entry.quantity))
        .join(Batch, Batch.id == Entry.batch_id)
        .where(
            Batch.origin_id.in_(origins),
            Entry.kind == EntryKind.issue.value,
            in_stores_seen(uow, Entry.compound_id),
        )
        .group_by(Batch.origin_id, *to)
        .order_by(func.min(Entry.at), *to)
    )
    for origin, holder_id, kind, reference_id, building_id, label, quantity in (
        await uow.session.execute(issues)
    ).all():
        issued = _Issued(kind, reference_id, label, building_id)
        went.add(origin, "issued", holder_id, -int(quantity or 0), issued)
    stock = (
        select(Batch.origin_id, Batch.holder_id, func.sum(Batch.on_hand))
        .where(Batch.origin_id.in_(origins), in_stores_seen(uow, Batch.compound_id))
        .group_by(Batch.origin_id, Batch.holder_id)
    )
    for origin, holder_id, on_hand in (await uow.session.execute(stock)).all():
        went.add(origin, "in_stock", holder_id, int(on_hand or 0))
    lost_query = (
        select(
            TransferLine.origin_id,
            Transfer.to_holder_id,
            func.sum(TransferLine.dispatched - TransferLine.received),
        )
        .join(Transfer, Transfer.id == TransferLine.transfer_id)
        .where(TransferLine.origin_id.in_(origins), TransferLine.received.is_not(None))
        .group_by(TransferLine.origin_id, Transfer.to_holder_id)
    )
    for origin, to_holder_id, quantity in (await uow.session.execute(lost_query)).all():
        went.add(origin, "lost_in_transit", to_holder_id, int(quantity or 0))
    # Adjustments net at each store: what was written off and then found again (a count
    # that put back what an earlier one took off) is in stock, not written off as well; more
    # than came to light is found.
    adjusted = (
        select(Batch.origin_id, Entry.holder_id, func.sum(Entry.quantity))
        .join(Batch, Batch.id == Entry.batch_id)
        .where(
            Batch.origin_id.in_(origins),
            Entry.kind == EntryKind.adjustment.value,
            in_stores_seen(uow, Entry.compound_id),
        )
        .group_by(Batch.origin_id, Entry.holder_id)
    )
    for origin, holder_id, quantity in (await uow.session.execute(adjusted)).all():
        net = int(quantity or 0)
        went.add(origin, "written_off" if net < 0 else "found", holder_id, abs(net))
    building_ids = {
        e.to_building_id for rows in went.rows.values() for *_, e in rows if e and e.to_building_id
    }
    if building_ids:
        Place = directory.models.Place
        codes = await uow.session.execute(
            select(Place.id, Place.code).where(Place.id.in_(building_ids))
        )
        went.buildings = {place_id: code for place_id, code in codes.all()}
    return went


async def _holders(uow: UnitOfWork, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    found = await uow.session.scalars(select(Holder).where(Holder.id.in_(ids)))
    return {h.id: where(h) for h in found}


async def to_export(
    uow: UnitOfWork, *, holder_id: uuid.UUID | None, donor: str | None, limit: int
) -> list[Receipt]:
    """The donations to export, all of them or a 422: a file cut short at ``limit`` would be
    read as the whole register by the donors it is shown to."""
    receipts = await repository.donations_to_export(
        uow, holder_id=holder_id, donor=donor, limit=limit + 1
    )
    if len(receipts) > limit:
        raise Invalid.on(
            "holder_id",
            f"the register holds more than {limit:,} donations, more than one file holds: "
            "export it store by store (holder_id) or donor by donor (donor)",
        )
    return receipts


async def export(
    uow: UnitOfWork, out: IO[bytes], *, sheet_format: SheetFormat, receipts: Sequence[Receipt]
) -> int:
    """The register as a sheet: one row per place a donated batch went."""
    donations = await register(uow, receipts)

    async def rows() -> AsyncIterator[list[Cell]]:
        for d in donations:
            for line in d.lines:
                head: list[Cell] = [
                    d.received_at,
                    d.donor,
                    d.donor_contact or "",
                    d.holder,
                    line.item,
                    line.unit,
                    line.batch,
                    line.expires_on.isoformat() if line.expires_on else "",
                    line.quantity,
                ]
                if not line.went_to:
                    yield [*head, "", "", "", "", "", ""]
                for went in line.went_to:
                    yield [
                        *head,
                        went.kind,
                        went.holder,
                        went.reference_kind or "",
                        went.reference_label
                        or (str(went.reference_id) if went.reference_id else ""),
                        went.building or "",
                        went.quantity,
                    ]

    return await write_sheet(
        out, sheet_format=sheet_format, title="Donations", columns=COLUMNS, rows=rows()
    )
