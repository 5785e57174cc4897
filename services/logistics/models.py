"""The logistics service's tables. Its directory of places, households, residents, zones and
people is the shared projection of registry events (``shared/directory``, never the
registry's tables); every placed row carries town, committee, compound and building ids
(:class:`~shared.auth.Scoped`) so that scope filtering needs no joins."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from shared.auth import Scoped
from shared.db import define_kernel_tables, new_metadata, utc_datetime
from shared.directory import Directory, define_directory
from shared.ids import new_id


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: utc_datetime(), uuid.UUID: Uuid}


SERVICE = "logistics"
kernel = define_kernel_tables(Base.metadata)
# The registry's places, households, residents, zones and people as this service knows them.
directory = Directory(define_directory(Base))


# ---- distribution ----
# Names of the directory's mapped classes, for the features' queries.
DirectoryPlace = directory.models.Place
DirectoryHousehold = directory.models.Household
DirectoryResident = directory.models.Resident
DirectoryZone = directory.models.Zone


class AllocationStatus(StrEnum):
    pending = "pending"  # not delivered yet (door delivery pending when ``door_delivery``)
    delivered = "delivered"
    undelivered = "undelivered"  # tried and failed: ``reason`` says why


class DoorReason(StrEnum):
    """Why a household's allocation goes to its door rather than being collected."""

    sealed = "sealed"  # its unit or building is a sealed zone
    case = "case"  # a resident was confirmed positive
    unit_sealed = "unit_sealed"  # the deliverer found the unit sealed


class DistributionPlan(Scoped, Base):
    """Items (or kits) to the households of a scope, by rules held as data. Placed where its
    scope's places meet, as a round is. A top-up plan (``top_up_of``) has its original's scope
    and rules and allocates only to households no plan of that family has allocated to;
    ``root_id`` is the family's original (its own id for an original)."""

    __tablename__ = "distribution_plans"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    root_id: Mapped[uuid.UUID] = mapped_column(index=True)
    top_up_of: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("distribution_plans.id"))
    name: Mapped[str] = mapped_column(String(120))
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The allocation rules: one line per item (see plans/schemas.py ``PlanLine``).
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    households: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]


class Allocation(Scoped, Base):
    """What one household receives of one item under one plan, and how far its delivery got.
    A household's rows of a plan (one per item) share their delivery state: deliveries change
    them together. Written set-based (``INSERT ... SELECT``), never one ORM object at a time."""

    __tablename__ = "distribution_allocations"

    # Keyed by the family of plans: a top-up's "not allocated yet" and a delivery's
    # households are looked up by this key's prefix.
    root_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    household_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    item_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # No foreign key: its check would run once per row of a town-wide plan; the plan and its
    # rows are written in one transaction by one function.
    plan_id: Mapped[uuid.UUID]
    # Placed like every scoped row, without the mixin's index per column: a plan writes a
    # town's households at once and every index costs that write (reads go by plan).
    town_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    committee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    compound_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    building_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    unit_id: Mapped[uuid.UUID | None]
    household_size: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=AllocationStatus.pending.value)
    reason: Mapped[str | None] = mapped_column(String(20))
    door_delivery: Mapped[bool] = mapped_column(Boolean, default=False)
    door_reason: Mapped[str | None] = mapped_column(String(16))
    # When the door flag last followed a zone change: an older change arriving later is
    # ignored.
    door_since: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_distribution_allocations_plan_building", "plan_id", "building_id", "unit_id"),
    )


class Delivery(Scoped, Base):
    """One confirmation from a deliverer's phone for one household: delivered (to whom, a
    photo reference or the code the household read out) or not delivered with a reason. The
    phone's ``client_ref`` makes a resent confirmation a duplicate that changes nothing."""

    __tablename__ = "distribution_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("distribution_plans.id"))
    household_id: Mapped[uuid.UUID]
    unit_id: Mapped[uuid.UUID | None]
    client_ref: Mapped[str] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(20))
    received_by: Mapped[str | None] = mapped_column(String(60))
    photo_ref: Mapped[str | None] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(20))
    recorded_by: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime]
    recorded_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("plan_id", "client_ref", "household_id"),)


class CaseHousehold(Scoped, Base):
    """A household with a confirmed case (from ``testing.case.confirmed``): its deliveries
    go to the door, in plans made before and after."""

    __tablename__ = "distribution_case_households"

    household_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    case_id: Mapped[uuid.UUID]
    confirmed_at: Mapped[datetime]


# ---- stock ----
# Quantities are stored as integer thousandths of the item's unit (2.5 kg is 2500): sums are
# exact on both backends (SQLite has no decimal type) and a kilogram splits to the gram.
MILLI = 1000


class ItemUnit(StrEnum):
    portion = "portion"
    kg = "kg"
    jin = "jin"  # 斤, half a kilogram: how markets and donors weigh rice and vegetables
    box = "box"
    piece = "piece"


class StockSource(StrEnum):
    government = "government"
    donation = "donation"
    purchase = "purchase"


class EntryKind(StrEnum):
    receipt = "receipt"
    transfer_out = "transfer_out"  # dispatched from the town warehouse
    transfer_in = "transfer_in"  # received at a compound (what arrived, not what left)
    issue = "issue"  # to a distribution plan or a help request
    adjustment = "adjustment"


class AdjustmentReason(StrEnum):
    lost = "lost"
    damaged = "damaged"
    expired = "expired"
    found = "found"
    count_correction = "count_correction"


class Item(Scoped, Base):
    """An item of the town's catalogue (placed at the town): what every store counts in."""

    __tablename__ = "stock_items"
    __table_args__ = (UniqueConstraint("town_id", "name"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    unit: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(60), default="")
    # A perishable item's receipts carry an expiry; reservations take the earliest first.
    perishable: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class Kit(Scoped, Base):
    """A kit of items handed out as one (a supply package: rice 5 kg, oil 1, ...)."""

    __tablename__ = "stock_kits"
    __table_args__ = (UniqueConstraint("town_id", "name"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]


class KitLine(Scoped, Base):
    __tablename__ = "stock_kit_lines"
    kit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_kits.id"), primary_key=True)
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_items.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)


class Holder(Scoped, Base):
    """Who holds stock: the town warehouse (its id is the town's) or a compound's store (its
    id is the compound's). Every change to its stock first raises ``version`` with one
    conditional UPDATE: that takes the row's lock on PostgreSQL (SQLite serialises writers
    anyway), so two operators' changes to one holder's stock run one after the other, and
    the version orders the holder's events."""

    __tablename__ = "stock_holders"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # warehouse | store
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class Batch(Scoped, Base):
    """The balance of one batch at one holder: what one receipt line brought in (its
    ``origin_id``), or the part of it transferred here. Balances are derived from the ledger
    and kept here so a reservation can lock and check them; the constraints refuse anything
    negative even if a bug slipped past the service's checks."""

    __tablename__ = "stock_batches"
    __table_args__ = (
        UniqueConstraint("holder_id", "origin_id"),
        Index("ix_stock_batches_holder_item", "holder_id", "item_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_holders.id"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_items.id"), index=True)
    origin_id: Mapped[uuid.UUID]
    batch: Mapped[str] = mapped_column(String(60), default="")
    expires_on: Mapped[date | None] = mapped_column(Date)
    received_at: Mapped[datetime]
    on_hand: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)


class Receipt(Scoped, Base):
    """Goods that arrived at a holder from outside: the government, a donor, a purchase."""

    __tablename__ = "stock_receipts"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_holders.id"), index=True)
    source: Mapped[str] = mapped_column(String(12), index=True)
    donor: Mapped[str | None] = mapped_column(String(120))
    donor_contact: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(80))


class Entry(Scoped, Base):
    """One line of a holder's stock card. Append-only: never updated, never deleted; a
    mistake is corrected by an adjustment. ``quantity`` is signed (in thousandths)."""

    __tablename__ = "stock_entries"
    __table_args__ = (Index("ix_stock_entries_holder_item", "holder_id", "item_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_holders.id"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_items.id"))
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_batches.id"), index=True)
    kind: Mapped[str] = mapped_column(String(14))
    quantity: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(20))
    # The receipt, transfer, count or adjustment this line belongs to.
    document_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # Issues: the plan or request the goods went to, and the building when one is known.
    reference_kind: Mapped[str | None] = mapped_column(String(10))
    reference_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    reference_label: Mapped[str | None] = mapped_column(String(200))
    to_building_id: Mapped[uuid.UUID | None]
    note: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(80))
    holder_version: Mapped[int] = mapped_column(BigInteger)


class Reservation(Scoped, Base):
    """Stock of one batch promised to a plan or a request: ``held`` counts in the batch's
    ``reserved`` until it is issued (delivered) or released."""

    __tablename__ = "stock_reservations"
    __table_args__ = (
        Index("ix_stock_reservations_reference", "reference_kind", "reference_id"),
        CheckConstraint("held >= 0", name="held_not_negative"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_holders.id"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_items.id"))
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_batches.id"), index=True)
    reference_kind: Mapped[str] = mapped_column(String(10))
    reference_id: Mapped[uuid.UUID]
    reference_label: Mapped[str] = mapped_column(String(200), default="")
    held: Mapped[int] = mapped_column(BigInteger)
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
    released: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]


class Transfer(Scoped, Base):
    """Goods sent from the town warehouse to a compound's store; placed at the compound.
    Dispatched (taken off the warehouse), then received (put on the store's card with what
    arrived; the difference is lost in transit)."""

    __tablename__ = "stock_transfers"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    from_holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_holders.id"))
    to_holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_holders.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))  # dispatched | received
    note: Mapped[str] = mapped_column(String(500), default="")
    dispatched_at: Mapped[datetime]
    dispatched_by: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime | None]
    received_by: Mapped[str | None] = mapped_column(String(80))


class TransferLine(Scoped, Base):
    __tablename__ = "stock_transfer_lines"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    transfer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_transfers.id"), index=True)
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_items.id"))
    from_batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_batches.id"))
    origin_id: Mapped[uuid.UUID]
    batch: Mapped[str] = mapped_column(String(60), default="")
    expires_on: Mapped[date | None] = mapped_column(Date)
    dispatched: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int | None] = mapped_column(BigInteger)


class Count(Scoped, Base):
    """A physical count at a holder: per batch, what the card said and what was found
    (``lines``: [{batch_id, item_id, expected, counted}] in thousandths); each difference is
    an adjustment (count_correction) on the card."""

    __tablename__ = "stock_counts"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stock_holders.id"), index=True)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(500), default="")
    counted_at: Mapped[datetime]
    counted_by: Mapped[str] = mapped_column(String(80))
