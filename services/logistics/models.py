"""The logistics service's tables. Its directory of places, households, residents, zones and
people is the shared projection of registry events (``shared/directory``, never the
registry's tables); every placed row carries town, committee, compound and building ids
(:class:`~shared.auth.Scoped`) so that scope filtering needs no joins."""

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from shared.authz import Scoped
from shared.db import define_kernel_tables, new_metadata, utc_datetime
from shared.directory import Directory, define_directory


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: utc_datetime(), uuid.UUID: Uuid}


SERVICE = "logistics"
kernel = define_kernel_tables(Base.metadata)
# The registry's places, households, residents, zones and people as this service knows them.
directory = Directory(define_directory(Base))


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
    recurring_lead_minutes: Mapped[int] = mapped_column(Integer, default=120)
    # The town's clock: recurring requests and volunteers' availability are in local time.
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")


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
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(index=True)
    household_id: Mapped[uuid.UUID | None]
    unit_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(20))
    details: Mapped[str] = mapped_column(Text, default="")
    hospital: Mapped[str | None] = mapped_column(String(120))
    weekdays: Mapped[list[str]] = mapped_column(JSON)
    at_time: Mapped[str] = mapped_column(String(5))
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
