import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.privacy import PersonalPhone, PersonalRecord

Grouping = Literal["compound", "grid", "building", "unit"]


class Tally(BaseModel):
    """Where a round stands for a set of its members, each counted once."""

    expected: int = Field(description="Members of the round")
    sampled: int = Field(description="Members in a tube (their first sampling in this round)")
    resulted: int = Field(
        description="Members whose tube has a negative or positive result (an invalid tube, "
        "or a retest tube still at the lab, is not a result)"
    )
    positive: int = Field(description="Members confirmed positive or in a positive pool")
    missed: int = Field(description="Members not sampled: expected minus sampled")


class CoverageGroup(Tally):
    place_id: uuid.UUID | None = Field(
        description="By unit, a house without units is a group of kind `building`"
    )
    kind: Grouping
    code: str | None
    name: str | None
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    parent_id: uuid.UUID | None = Field(description="Grids only: the grid a microgrid is part of")


class Coverage(BaseModel):
    round_id: uuid.UUID
    by: Grouping
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    total: Tally = Field(description="Every member in the filter, each once")
    groups: list[CoverageGroup] = Field(
        description="By grid, a building in a grid and in its microgrid counts in both, and "
        "buildings in no grid count only in the total"
    )


class RoundBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: str
    status: str
    starts_at: datetime
    ends_at: datetime
    opened_at: datetime | None


class OpenRoundCoverage(BaseModel):
    compound_id: uuid.UUID
    round: RoundBrief | None = Field(
        description="The open round most recently opened with members of this compound in "
        "your scope; empty when there is none"
    )
    buildings: Coverage | None = Field(description="Its coverage in the compound by building")
    units: Coverage | None = Field(description="Its coverage in the compound by unit")


class MissedResident(PersonalRecord):
    resource: ClassVar[str] = "round_members"
    record_id: ClassVar[str] = "resident_id"

    resident_id: uuid.UUID
    name: str
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    unit: str | None = Field(description="Building and unit codes, e.g. 3-2")
    household_id: uuid.UUID
    phone: PersonalPhone = Field(description="Masked unless revealed")
    door_to_door: bool = Field(description="Bedridden or disabled: sample at the door")
