import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.logistics.models import DisinfectionTarget
from shared.fields import FieldError, FreeText, Moment

PerDay = Field(ge=1, le=24, description="Times a day")
# Targets inside a building, and those inside a unit.
IN_BUILDING = frozenset(
    {
        DisinfectionTarget.building,
        DisinfectionTarget.lift,
        DisinfectionTarget.unit,
        DisinfectionTarget.stairwell,
    }
)
IN_UNIT = frozenset({DisinfectionTarget.unit, DisinfectionTarget.stairwell})


class DefaultsIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "building_per_day": 1,
                    "lift_per_day": 2,
                    "sampling_site_per_day": 2,
                    "unit_per_day": 1,
                    "sealed_per_day": 3,
                    "stairwell_per_day": 4,
                    "case_days": 14,
                    "first_slot_hour": 8,
                    "last_slot_hour": 20,
                }
            ]
        }
    )

    building_per_day: int = PerDay
    lift_per_day: int = PerDay
    sampling_site_per_day: int = PerDay
    unit_per_day: int = PerDay
    sealed_per_day: int = Field(
        ge=1, le=24, description="At least this often while a building or unit is sealed"
    )
    stairwell_per_day: int = Field(
        ge=1, le=24, description="A confirmed case's household's stairwell"
    )
    case_days: int = Field(ge=1, le=60, description="Days a case's stairwell stays scheduled")
    first_slot_hour: int = Field(ge=0, le=23, description="The day's first slot, town time")
    last_slot_hour: int = Field(ge=1, le=24, description="The day's slots end by then, town time")

    @model_validator(mode="after")
    def _hours(self) -> "DefaultsIn":
        if self.last_slot_hour <= self.first_slot_hour:
            raise FieldError("last_slot_hour", "last_slot_hour must come after first_slot_hour")
        return self


class DefaultsOut(DefaultsIn):
    model_config = ConfigDict(from_attributes=True)

    town_id: uuid.UUID


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "target": "lift",
                    "compound_id": "0193a1c2-0000-7000-8000-000000000c01",
                    "building_id": "0193a1c2-0000-7000-8000-000000000b01",
                    "label": "Lift A",
                    "per_day": 2,
                    "team": "Disinfection team, compound 1",
                }
            ]
        }
    )

    target: DisinfectionTarget
    compound_id: uuid.UUID
    building_id: uuid.UUID | None = Field(
        None, description="Required for every target but a sampling site"
    )
    unit_id: uuid.UUID | None = Field(None, description="Required for a unit or a stairwell")
    label: FreeText = Field("", max_length=120, description="Which lift, which site")
    per_day: int | None = Field(
        None, ge=1, le=24, description="Times a day; the town's default for the target if empty"
    )
    responsible_person_id: uuid.UUID | None = Field(
        None, description="The staff member or volunteer who answers for it"
    )
    team: FreeText = Field("", max_length=80)

    @model_validator(mode="after")
    def _placed(self) -> "ScheduleCreate":
        if self.target in IN_BUILDING and self.building_id is None:
            raise FieldError("building_id", f"building_id is required for a {self.target.value}")
        if self.target in IN_UNIT and self.unit_id is None:
            raise FieldError("unit_id", f"unit_id is required for a {self.target.value}")
        return self


class ScheduleChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"per_day": 2, "team": "Volunteers of building 3"}]}
    )

    per_day: int | None = Field(None, ge=1, le=24)
    label: FreeText | None = Field(None, max_length=120)
    responsible_person_id: uuid.UUID | None = None
    team: FreeText | None = Field(None, max_length=80)
    active: bool | None = Field(None, description="false ends the schedule")


class ScheduleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    target: DisinfectionTarget
    town_id: uuid.UUID
    committee_id: uuid.UUID | None
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    label: str
    reason: str
    base_per_day: int | None = Field(description="What staff set; empty: the town's default")
    per_day: int = Field(description="Times a day now (raised while the area is sealed)")
    zone_level: str | None
    responsible_person_id: uuid.UUID | None
    team: str
    active: bool
    until: datetime | None
    case_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


class CompletionIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "done_at": "2022-04-02T09:40:00+08:00",
                    "note": "Handrails and lift buttons sprayed",
                    "photo_ref": "photos/2022-04-02/b3-lift-a.jpg",
                }
            ]
        }
    )

    done_at: Moment | None = Field(
        None,
        description="When it was done; now if empty. Not in the future nor before the task's "
        "slot began (beyond the clock tolerance)",
    )
    done_by_person_id: uuid.UUID | None = Field(
        None, description="The team member who did it, when not the signed-in account"
    )
    note: FreeText | None = Field(None, max_length=400)
    photo_ref: FreeText | None = Field(None, max_length=200)


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    schedule_id: uuid.UUID
    target: DisinfectionTarget
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    label: str
    slot_at: datetime
    due_at: datetime
    status: str
    missed_at: datetime | None
    done_at: datetime | None
    done_by: str | None
    done_by_person_id: uuid.UUID | None
    note: str | None
    photo_ref: str | None
    version: int


class MissedGroup(BaseModel):
    """The missed tasks of one building (or of a compound's sampling sites)."""

    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    missed: int
    tasks: list[TaskOut]
