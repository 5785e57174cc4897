import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.registry.models import CompoundStatus, ZoneLevel

Reason = Field(min_length=1, max_length=500, examples=["confirmed case in unit 2"])


class ZoneSet(BaseModel):
    building_id: uuid.UUID
    unit_id: uuid.UUID | None = Field(default=None, description="Empty zones the whole building")
    level: ZoneLevel | None = Field(description="Empty lifts the zone", examples=["sealed"])
    reason: str = Reason


class ZoneOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    level: ZoneLevel
    reason: str
    set_by: str
    since: datetime


class ZoneResult(BaseModel):
    changed: bool = Field(description="False when the area was at this level already")
    zone: ZoneOut | None = Field(description="The zone now; empty when lifted")


class ZoneChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    from_level: ZoneLevel | None
    to_level: ZoneLevel | None
    reason: str
    set_by: str
    at: datetime


class ZoneCount(BaseModel):
    compound_id: uuid.UUID
    level: ZoneLevel
    buildings: int
    units: int


class StatusSet(BaseModel):
    status: CompoundStatus
    reason: str = Reason
