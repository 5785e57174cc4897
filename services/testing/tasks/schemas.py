import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

TaskKindName = Literal["retest", "resample", "pcr_after_antigen"]


class TaskOut(BaseModel):
    """Door-to-door work for a sampler: who, where, and why."""

    id: uuid.UUID
    kind: TaskKindName
    status: Literal["open", "done"]
    resident_id: uuid.UUID
    name: str | None
    phone: str | None
    round_id: uuid.UUID | None
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    door_to_door: bool
    cause_id: uuid.UUID
    created_at: datetime
    done_at: datetime | None
    done_tube_id: uuid.UUID | None
