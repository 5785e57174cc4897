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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from shared.authz import Scoped
from shared.db import define_kernel_tables, new_metadata, partial_index, utc_datetime
from shared.directory import Directory, define_directory
from shared.ids import new_id


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: utc_datetime(), uuid.UUID: Uuid}


SERVICE = "logistics"
kernel = define_kernel_tables(Base.metadata)
# The registry's places, households, residents, zones and people as this service knows them.
directory = Directory(define_directory(Base))


# ---- disinfection ----


class DisinfectionTarget(StrEnum):
    """What a schedule disinfects: a building's common parts, a lift, a sampling site, a
    unit (a sealed unit), or a positive household's stairwell."""

    building = "building"
    lift = "lift"
    sampling_site = "sampling_site"
    unit = "unit"
    stairwell = "stairwell"


class ScheduleReason(StrEnum):
    """Why a schedule exists: set up by staff, made when its area was sealed, or made for a
    confirmed case's stairwell."""

    manual = "manual"
    sealed = "sealed"
    case = "case"


class TaskStatus(StrEnum):
    pending = "pending"
    done = "done"
    missed = "missed"


class DisinfectionDefaults(Scoped, Base):
    """A town's disinfection defaults, as data: times a day per target, more for sealed areas
    and positive households' stairwells (the field: once or twice a day, more there), the
    hours the day's slots span, and the town's clock. The column defaults hold until the
    town office sets its own."""

    __tablename__ = "disinfection_defaults"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    building_per_day: Mapped[int] = mapped_column(Integer, default=1)
    lift_per_day: Mapped[int] = mapped_column(Integer, default=2)
    sampling_site_per_day: Mapped[int] = mapped_column(Integer, default=2)
    unit_per_day: Mapped[int] = mapped_column(Integer, default=1)
    sealed_per_day: Mapped[int] = mapped_column(Integer, default=3)
    stairwell_per_day: Mapped[int] = mapped_column(Integer, default=4)
    # A positive household's stairwell keeps its schedule this long after the case.
    case_days: Mapped[int] = mapped_column(Integer, default=14)
    first_slot_hour: Mapped[int] = mapped_column(Integer, default=8)
    last_slot_hour: Mapped[int] = mapped_column(Integer, default=20)


class DisinfectionSchedule(Scoped, Base):
    """How often a target is disinfected and who answers for it. Placed at its building (a
    sampling site without one: its compound). ``per_day`` is what tasks are made from: the
    staff's ``base_per_day`` (or the town's default for the target), raised while the area
    is sealed; ``slots_from`` is when that frequency began (tasks are made for slots due
    after it). ``auto_key`` names the schedules the service makes itself (a sealed area, a
    case's stairwell), one per area."""

    __tablename__ = "disinfection_schedules"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    target: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    label: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(String(10), default=ScheduleReason.manual.value)
    auto_key: Mapped[str | None] = mapped_column(String(60), unique=True)
    base_per_day: Mapped[int | None] = mapped_column(Integer)
    per_day: Mapped[int] = mapped_column(Integer)
    zone_level: Mapped[str | None] = mapped_column(String(12))
    responsible_person_id: Mapped[uuid.UUID | None]
    team: Mapped[str] = mapped_column(String(80), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A case's stairwell schedule ends by itself then.
    until: Mapped[datetime | None]
    case_id: Mapped[uuid.UUID | None]
    slots_from: Mapped[datetime]
    # Tasks exist for every slot up to here (the end of a town day); empty after a change.
    made_through: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DisinfectionTask(Scoped, Base):
    """One slot of a schedule: to be done between ``slot_at`` and ``due_at``. Made once per
    (schedule, slot) whatever the number of worker replicas: the unique key decides."""

    __tablename__ = "disinfection_tasks"
    __table_args__ = (
        UniqueConstraint("schedule_id", "slot_at"),
        Index("ix_disinfection_tasks_status_due", "status", "due_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("disinfection_schedules.id"))
    unit_id: Mapped[uuid.UUID | None]
    target: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(120))
    slot_at: Mapped[datetime]
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(8), default=TaskStatus.pending.value)
    missed_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    # Who recorded it (the account), and the team member who did it when named.
    done_by: Mapped[str | None] = mapped_column(String(80))
    done_by_person_id: Mapped[uuid.UUID | None]
    note: Mapped[str | None] = mapped_column(String(400))
    photo_ref: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)


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
    # Not delivered when its plan was cancelled: nobody is to deliver it any more (``reason``
    # keeps why an earlier try failed).
    cancelled = "cancelled"


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
    # A cancelled plan gave back what it still held and takes no more deliveries.
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(80))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))


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
    # What the household turned back of its allocation: [{item_id, quantity}].
    rejected: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
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
    # A plan's issue names the household the goods were delivered to.
    to_household_id: Mapped[uuid.UUID | None]
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


# ---- requests ----
# Help requests and errands, recurring requests, medicine-run trips and the town's settings.


class RequestSettings(Scoped, Base):
    """A town's service-time targets and timers (one row per town, ``id`` = the town's id;
    the defaults below until a town operator sets them)."""

    __tablename__ = "request_settings"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    urgent_minutes: Mapped[int] = mapped_column(Integer, default=60)
    high_minutes: Mapped[int] = mapped_column(Integer, default=240)
    normal_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    # How long an overdue request waits before each further escalation.
    escalate_after_minutes: Mapped[int] = mapped_column(Integer, default=60)
    # When an insurance card collected for a medicine run must be back with the resident.
    card_return_hours: Mapped[int] = mapped_column(Integer, default=24)
    # How long before its time a recurring request's occurrence appears.
    # (Recurring requests and volunteers' availability are in the town office's clock,
    # ``Settings.time_zone``.)
    recurring_lead_minutes: Mapped[int] = mapped_column(Integer, default=120)


class HelpRequest(Scoped, Base):
    """A resident's request and the errand that serves it; placed at the resident's building.
    A medicine run also tracks the resident's insurance card (``card_*``)."""

    __tablename__ = "help_requests"
    __table_args__ = (
        # An occurrence of a recurring request exists once, whichever replica made it.
        UniqueConstraint("recurrence_id", "occurs_on"),
        Index("ix_help_requests_open_escalation", "status", "next_escalation_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(index=True)
    household_id: Mapped[uuid.UUID | None]
    unit_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(20))
    details: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list[str]] = mapped_column(JSON, default=list)
    hospital: Mapped[str | None] = mapped_column(String(120))
    priority: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12))
    due_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    assignee_kind: Mapped[str | None] = mapped_column(String(10))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    team: Mapped[str | None] = mapped_column(String(80))
    assigned_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(80))
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    # 0 until overdue; 1 overdue, 2 escalated to the grid leader, 3 to the town operator.
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None]
    # The aggregate's version: every event about the request carries it.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    recurrence_id: Mapped[uuid.UUID | None]
    occurs_on: Mapped[date | None] = mapped_column(Date)
    trip_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    card_label: Mapped[str | None] = mapped_column(String(40), unique=True)
    card_status: Mapped[str | None] = mapped_column(String(12))
    card_collected_at: Mapped[datetime | None]
    card_at_hospital_at: Mapped[datetime | None]
    card_returned_at: Mapped[datetime | None]
    card_due_at: Mapped[datetime | None]
    card_overdue_reported_at: Mapped[datetime | None]


class RequestEscalation(Scoped, Base):
    """Each escalation of an overdue request, once: the key (request, level) makes a second
    replica's insert a no-op."""

    __tablename__ = "request_escalations"
    __table_args__ = (UniqueConstraint("request_id", "level"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(index=True)
    level: Mapped[int] = mapped_column(Integer)
    escalated_to: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime]


class Recurrence(Scoped, Base):
    """A request that repeats on fixed weekdays at a local time (dialysis M/W/F at 07:30)."""

    __tablename__ = "recurring_requests"
    __table_args__ = (
        # One active series per resident, kind, days, time and first day: a second one (a
        # double click at night) would make every trip twice. The service refuses any series
        # overlapping an active one, naming it; this index decides between two entered at
        # once.
        partial_index(
            "uq_recurring_requests_active",
            "resident_id",
            "kind",
            "weekdays_key",
            "at_time",
            "starts_on",
            where="active",
            unique=True,
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(index=True)
    household_id: Mapped[uuid.UUID | None]
    unit_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(20))
    details: Mapped[str] = mapped_column(Text, default="")
    hospital: Mapped[str | None] = mapped_column(String(120))
    weekdays: Mapped[list[str]] = mapped_column(JSON)
    # The weekdays in the week's order, comma-separated ("mon,wed,fri"): what the unique
    # index compares (a JSON column has no equality on PostgreSQL).
    weekdays_key: Mapped[str] = mapped_column(String(27), info={"field": "weekdays"})
    at_time: Mapped[str] = mapped_column(String(5), info={"field": "at"})
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]


class Trip(Scoped, Base):
    """Medicine runs to one hospital done together; placed where its runs meet."""

    __tablename__ = "trips"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
