import uuid
from datetime import datetime
from typing import ClassVar, Literal

from shared.privacy import HealthRecord, PersonalName, PersonalPhone

TaskKindName = Literal["retest", "resample", "pcr_after_antigen"]


class TaskOut(HealthRecord):
    """Door-to-door work for a sampler: who, where, and why. Health data (a retest follows a
    positive pool, a PCR task a positive antigen): the name is masked as on results."""

    resource: ClassVar[str] = "tasks"
    record_id: ClassVar[str] = "resident_id"

    id: uuid.UUID
    kind: TaskKindName
    status: Literal["open", "done"]
    resident_id: uuid.UUID
    name: PersonalName
    phone: PersonalPhone
    round_id: uuid.UUID | None
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    door_to_door: bool
    cause_id: uuid.UUID
    created_at: datetime
    done_at: datetime | None
    done_tube_id: uuid.UUID | None
