"""The testing service's tables. Its directory of places, residents and zones is the shared
projection of registry events (``shared/directory``, never the registry's tables); every
placed row carries town, compound and building ids (:class:`~shared.auth.Scoped`) so that
scope filtering needs no joins."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
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


SERVICE = "testing"
kernel = define_kernel_tables(Base.metadata)
# The registry's places, residents and zones as this service knows them (shared/directory).
directory = Directory(define_directory(Base))
DirectoryPlace = directory.models.Place
DirectoryGridBuilding = directory.models.GridBuilding
DirectoryResident = directory.models.Resident
DirectoryZone = directory.models.Zone
# A town's run of days without a positive before a compound may be declared epidemic-free,
# until its policy says otherwise.
EPIDEMIC_FREE_DAYS = 14


def room_for_updates(versions: int) -> dict[str, Any]:
    """Room on each page for this many new versions of every row, so that PostgreSQL updates
    rows in place without touching their indexes (HOT), even while a long transaction
    elsewhere keeps the old versions from being pruned: a million-person results upload took
    12 s instead of 26 s so."""
    return {"postgresql_with": {"fillfactor": 100 // (versions + 1)}}


class RoundStatus(StrEnum):
    scheduled = "scheduled"
    open = "open"
    closed = "closed"


class MemberStatus(StrEnum):
    """Where one resident stands in one round."""

    expected = "expected"  # not sampled yet
    sampled = "sampled"  # in a tube awaiting its result
    negative = "negative"
    retest_required = "retest_required"  # their pool was positive
    # Their pool was positive and their retest tube is at the lab: still counted positive.
    retest_sampled = "retest_sampled"
    resample_required = "resample_required"  # their tube was invalid
    positive = "positive"  # confirmed case


class TubeStatus(StrEnum):
    collected = "collected"
    negative = "negative"
    positive = "positive"
    invalid = "invalid"


class TaskKind(StrEnum):
    retest = "retest"  # single tube, door to door, after a positive pool
    resample = "resample"  # after an invalid tube
    pcr_after_antigen = "pcr_after_antigen"  # a positive antigen self-test


class TaskStatus(StrEnum):
    open = "open"
    done = "done"


class TransferStatus(StrEnum):
    pending = "pending"
    scheduled = "scheduled"
    transferred = "transferred"


class Round(Scoped, Base):
    """A screening round; placed at its town (its members carry their own places)."""

    __tablename__ = "rounds"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), index=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    pool_size: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class RoundMember(Scoped, Base):
    """One resident expected in one round, and where they stand in it."""

    __tablename__ = "round_members"
    __table_args__ = (
        # Coverage by place; the scope's columns carried along so that a count of a round's
        # members in the caller's scope (the rounds list) reads the index alone (PostgreSQL).
        Index(
            "ix_round_members_round_place",
            "round_id",
            "compound_id",
            "building_id",
            "unit_id",
            postgresql_include=["town_id", "committee_id"],
        ),
        # A compound's members of a round in resident order: a page of the missed list reads
        # a few hundred entries, not the compound's every member sorted. Not on sampled_at:
        # recording a tube stays a heap-only update.
        Index("ix_round_members_round_compound_resident", "round_id", "compound_id", "resident_id"),
        # Sampled, then resulted.
        room_for_updates(2),
    )
    round_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    household_id: Mapped[uuid.UUID]
    unit_id: Mapped[uuid.UUID | None]
    door_to_door: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=MemberStatus.expected.value)
    tube_id: Mapped[uuid.UUID | None]
    sampled_at: Mapped[datetime | None]
    resulted_at: Mapped[datetime | None]


class Site(Scoped, Base):
    """A sampling site of a round in one compound, with the buildings and time slots it
    serves (``slots``: [{"starts_at", "ends_at", "building_ids"}])."""

    __tablename__ = "sampling_sites"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    round_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rounds.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    building_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    slots: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Tube(Scoped, Base):
    """A sampled tube: one person (single) or a pool. Placed at its members' compound (and
    building when they share one). Tube codes are printed barcodes, unique everywhere."""

    __tablename__ = "tubes"
    # Resulted.
    __table_args__ = (room_for_updates(1),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    round_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rounds.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    pooled: Mapped[bool] = mapped_column(Boolean)
    retest: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sampling_sites.id"))
    collector: Mapped[str] = mapped_column(String(80))
    collected_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(10), default=TubeStatus.collected.value)
    lab: Mapped[str | None] = mapped_column(String(120))
    resulted_at: Mapped[datetime | None]
    upload_id: Mapped[uuid.UUID | None]


class TubeMember(Scoped, Base):
    __tablename__ = "tube_members"
    __table_args__ = (Index("ix_tube_members_round_resident", "round_id", "resident_id"),)
    tube_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tubes.id"), primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    round_id: Mapped[uuid.UUID]


class Task(Scoped, Base):
    """Door-to-door work for one resident: a single-tube retest, a resample, a PCR after a
    positive antigen test."""

    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("resident_id", "kind", "cause_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    round_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("rounds.id"), index=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(index=True)
    unit_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(20))
    # The tube or antigen report that made this task.
    cause_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(10), default=TaskStatus.open.value, index=True)
    door_to_door: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    done_tube_id: Mapped[uuid.UUID | None]


class ResultUpload(Scoped, Base):
    """One lab results file and its outcome; the same content is applied once."""

    __tablename__ = "result_uploads"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)
    positive: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    # Residents whose status the upload changed.
    people: Mapped[int] = mapped_column(Integer, default=0)
    # All row errors; ``errors`` keeps the first of them.
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]


class Case(Scoped, Base):
    __tablename__ = "cases"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    resident_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    household_id: Mapped[uuid.UUID | None]
    unit_id: Mapped[uuid.UUID | None]
    round_id: Mapped[uuid.UUID | None]
    tube_id: Mapped[uuid.UUID | None]
    source: Mapped[str] = mapped_column(String(20))
    confirmed_at: Mapped[datetime]
    transfer_status: Mapped[str] = mapped_column(String(12), index=True)
    transfer_due_at: Mapped[datetime]
    transfer_scheduled_for: Mapped[datetime | None]
    transfer_destination: Mapped[str | None] = mapped_column(String(200))
    transferred_at: Mapped[datetime | None]
    overdue_reported_at: Mapped[datetime | None]


class Contact(Scoped, Base):
    """A close or secondary contact of a case; ``resident_id`` empty for someone from
    outside the directory, added by hand."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("case_id", "resident_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    resident_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(10))
    quarantine_until: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]


class AntigenReport(Scoped, Base):
    """A resident's daily antigen self-test; one per resident and day (a correction replaces)."""

    __tablename__ = "antigen_reports"
    __table_args__ = (UniqueConstraint("resident_id", "day"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    resident_id: Mapped[uuid.UUID]
    unit_id: Mapped[uuid.UUID | None]
    day: Mapped[date] = mapped_column(Date, index=True)
    result: Mapped[str] = mapped_column(String(10))
    temperature: Mapped[float | None] = mapped_column(Float)
    reported_at: Mapped[datetime]
    reported_by: Mapped[str] = mapped_column(String(80))


class CompoundClock(Scoped, Base):
    """Days since a compound's last positive; ``eligible_reported_at`` marks the run of
    days already announced, so replicas of the periodic job announce it once."""

    __tablename__ = "compound_clocks"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_positive_at: Mapped[datetime | None]
    eligible_reported_at: Mapped[datetime | None]


class Policy(Scoped, Base):
    """A town's rules for cases and clocks (one row per town; defaults until changed)."""

    __tablename__ = "policies"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    close_contact_days: Mapped[int] = mapped_column(Integer, default=10)
    secondary_contact_days: Mapped[int] = mapped_column(Integer, default=7)
    unit_neighbours_are_secondary: Mapped[bool] = mapped_column(Boolean, default=True)
    epidemic_free_days: Mapped[int] = mapped_column(Integer, default=EPIDEMIC_FREE_DAYS)
    transfer_within_hours: Mapped[int] = mapped_column(Integer, default=12)
