import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.registry.models import CompoundStatus, ProposalStatus, SealGranularity, ZoneLevel
from shared.fields import FreeText, Patch

Reason = Field(min_length=1, max_length=500, examples=["confirmed case in unit 2"])


class ZoneSet(BaseModel):
    building_id: uuid.UUID
    unit_id: uuid.UUID | None = Field(default=None, description="Empty zones the whole building")
    level: ZoneLevel | None = Field(description="Empty lifts the zone", examples=["sealed"])
    reason: FreeText = Reason
    downgrade: bool = Field(
        default=False,
        description="Confirms a downgrade from what the area inherits: a unit set below its "
        "building's level leaves the building's zone (e.g. released from its seal). Without "
        "it such a change answers 409.",
    )


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
    last_positive_at: datetime | None = Field(description="The seal or the latest case in it")
    quiet_since: datetime = Field(
        description="Start of the run of days without a positive that earns a downgrade "
        "proposal: the latest level change, case or rejected proposal"
    )


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
    from_inherited: bool = Field(
        description="The unit had no zone of its own: ``from_level`` is its building's"
    )
    to_level: ZoneLevel | None
    reason: str
    set_by: str
    at: datetime


class ZoneCount(BaseModel):
    compound_id: uuid.UUID
    level: ZoneLevel
    buildings: int
    units: int


class Population(BaseModel):
    """Households and people of one place at one zone level, as the field reports them
    ("west zone: 45 households, 168 people sealed")."""

    compound_id: uuid.UUID
    building_id: uuid.UUID | None = Field(description="Empty when counted by compound")
    building_code: str | None
    unit_id: uuid.UUID | None = Field(description="Empty by compound or building, or no unit")
    unit_code: str | None
    level: ZoneLevel | None = Field(
        description="The level its residents live under: a unit's own zone, else its "
        "building's; empty for no zone"
    )
    households: int
    people: int


class StatusSet(Patch):
    status: CompoundStatus
    reason: FreeText = Reason
    override_reason: FreeText | None = Field(
        default=None,
        max_length=400,
        description="Epidemic-free needs the compound found eligible (its run of days without "
        "a positive) and no sealed building or unit; a town operator may declare it anyway "
        "only by giving why, recorded in the status reason and the event.",
        examples=[None],
    )


class TownPolicySet(Patch):
    seal_granularity: SealGranularity | None = Field(
        default=None,
        description="Whether a confirmed case seals its unit or its whole building",
        examples=["unit"],
    )
    downgrade_after_days: int | None = Field(
        default=None,
        ge=1,
        le=60,
        description="Days without a positive before a sealed area is proposed controlled, "
        "and as many again before a controlled area is proposed precaution",
        examples=[7],
    )


class ProposalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    zone_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    from_level: ZoneLevel
    to_level: ZoneLevel
    status: ProposalStatus
    reason: str
    proposed_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str


class ProposalDecision(BaseModel):
    note: FreeText = Field(
        default="", max_length=400, examples=["disinfection done, sampled negative"]
    )
