"""The logistics service's tables. Its directory of places, households, residents, zones and
people is the shared projection of registry events (``shared/directory``, never the
registry's tables); every placed row carries town, committee, compound and building ids
(:class:`~shared.auth.Scoped`) so that scope filtering needs no joins."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
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
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")


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
