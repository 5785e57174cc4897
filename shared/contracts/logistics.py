"""Events the logistics service publishes."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events import Event

# ---- disinfection ----

DisinfectionTargetName = Literal["building", "lift", "sampling_site", "unit", "stairwell"]


class DisinfectionScheduled(Event):
    """A disinfection schedule was set up or changed: its frequency (risen while its area is
    sealed), who answers for it, or its end. ``schedule_version`` grows with every change,
    so a consumer keeps the newest."""

    type = "logistics.disinfection.scheduled"
    schedule_id: uuid.UUID
    schedule_version: int
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    target: DisinfectionTargetName
    label: str
    reason: Literal["manual", "sealed", "case"]
    per_day: int
    zone_level: Literal["sealed", "controlled", "precaution"] | None
    responsible_person_id: uuid.UUID | None
    team: str
    active: bool
    until: datetime | None = Field(description="When a case's stairwell schedule ends")


class DisinfectionDone(Event):
    """A disinfection task was done (``late`` when after its slot had been missed)."""

    type = "logistics.disinfection.done"
    task_id: uuid.UUID
    task_version: int
    schedule_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    slot_at: datetime
    done_at: datetime
    done_by: str
    done_by_person_id: uuid.UUID | None
    late: bool


class DisinfectionMissed(Event):
    """A disinfection slot passed without the task being done."""

    type = "logistics.disinfection.missed"
    task_id: uuid.UUID
    task_version: int
    schedule_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    label: str
    slot_at: datetime
    due_at: datetime
