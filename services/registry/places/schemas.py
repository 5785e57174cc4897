import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.registry.models import CompoundKind, CompoundStatus, GateState, SealGranularity
from shared.fields import FreeText, Patch

Code = Field(min_length=1, max_length=40, pattern=r"^[\w\-./]+$", examples=["C07"])
CodeText = Annotated[str, Code]
Name = Field(min_length=1, max_length=120, examples=["Riverside Garden"])


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TownOut(Out):
    id: uuid.UUID
    code: str
    name: str
    seal_granularity: SealGranularity
    downgrade_after_days: int


class CommitteeCreate(BaseModel):
    town_id: uuid.UUID
    code: str = Code
    name: FreeText = Name


class CommitteeOut(Out):
    id: uuid.UUID
    town_id: uuid.UUID
    code: str
    name: str


class GateCreate(BaseModel):
    name: FreeText = Field(min_length=1, max_length=80, examples=["North gate"])
    state: GateState = GateState.open


class GateOut(Out):
    id: uuid.UUID
    compound_id: uuid.UUID
    name: str
    state: GateState


class GateUpdate(Patch):
    state: GateState


class CompoundCreate(BaseModel):
    committee_id: uuid.UUID
    code: str = Code
    name: FreeText = Name
    kind: CompoundKind
    gates: list[GateCreate] = Field(default_factory=list, max_length=50)


class CompoundOut(Out):
    id: uuid.UUID
    town_id: uuid.UUID
    committee_id: uuid.UUID
    code: str
    name: str
    kind: CompoundKind
    status: CompoundStatus
    status_reason: str
    status_since: datetime
    epidemic_free_eligible_since: datetime | None = Field(
        description="When the testing service found the compound a run of days without a "
        "positive (cleared by the next case); an operator may then declare it epidemic-free"
    )


class BuildingCreate(BaseModel):
    compound_id: uuid.UUID
    code: str = Code
    name: FreeText = Field(default="", max_length=120)
    units: list[CodeText] = Field(
        default_factory=list, max_length=200, description="Codes of the building's units"
    )


class BuildingOut(Out):
    id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    code: str
    name: str


class UnitCreate(BaseModel):
    building_id: uuid.UUID
    code: str = Code


class UnitOut(Out):
    id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    code: str


class GridCreate(BaseModel):
    town_id: uuid.UUID
    compound_id: uuid.UUID | None = Field(
        default=None, description="Where the grid is administered; empty for a town-wide grid"
    )
    parent_id: uuid.UUID | None = Field(default=None, description="Set for a microgrid")
    code: str = Code
    name: FreeText = Name
    leader_staff_id: uuid.UUID | None = None
    building_ids: list[uuid.UUID] = Field(default_factory=list, max_length=2000)


class GridOut(Out):
    id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    code: str
    name: str
    leader_staff_id: uuid.UUID | None
    building_ids: list[uuid.UUID] = Field(default_factory=list)
