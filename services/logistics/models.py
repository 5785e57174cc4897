"""The logistics service's tables. Its directory of places, households, residents, zones and
people is the shared projection of registry events (``shared/directory``, never the
registry's tables); every placed row carries town, committee, compound and building ids
(:class:`~shared.auth.Scoped`) so that scope filtering needs no joins."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
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
