import uuid
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.testing.models import MemberStatus
from shared.contracts.testing import RoundKind, RoundScope
from shared.fields import FieldError, Moment, Name
from shared.privacy import PersonalName, PersonalPhone, PersonalRecord

# A screening round is sampled in hours, a large town's in a few days.
MAX_WINDOW = timedelta(days=7)


class RoundCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "town_id": "0193a1c2-0000-7000-8000-000000000001",
                    "name": "Night round, compound 3",
                    "kind": "pcr",
                    "scope": {"kind": "compounds", "ids": ["0193a1c2-0000-7000-8000-00000000000c"]},
                    "starts_at": "2022-04-02T05:00:00+08:00",
                    "ends_at": "2022-04-02T11:00:00+08:00",
                    "pool_size": 10,
                }
            ]
        }
    )

    town_id: uuid.UUID
    name: Name = Field(max_length=120, examples=["Night screening, 2022-04-02"])
    kind: RoundKind = "pcr"
    scope: RoundScope
    starts_at: Moment
    ends_at: Moment
    pool_size: Literal[1, 10, 20] = Field(
        10, description="People per tube; sealed units are always sampled one per tube"
    )

    @model_validator(mode="after")
    def _window(self) -> "RoundCreate":
        if self.ends_at <= self.starts_at:
            raise FieldError("ends_at", "ends_at must be after starts_at")
        if self.ends_at - self.starts_at > MAX_WINDOW:
            raise FieldError("ends_at", f"a round's window is at most {MAX_WINDOW.days} days")
        if self.scope.kind != "zone_level" and self.scope.zone_level is not None:
            raise FieldError(
                "scope.zone_level", f"a {self.scope.kind} scope takes no scope.zone_level"
            )
        if self.scope.kind == "zone_level" and self.scope.zone_level is None:
            raise FieldError("scope.zone_level", "a zone_level scope needs scope.zone_level")
        if self.scope.kind in ("compounds", "buildings", "units") and not self.scope.ids:
            raise FieldError("scope.ids", f"a {self.scope.kind} scope needs scope.ids")
        return self


class RoundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    town_id: uuid.UUID
    name: str
    kind: str
    status: str
    scope: RoundScope = Field(
        description="Its scope; of a round placed above your scope (the town office's over "
        "several committees), the places in yours only"
    )
    starts_at: datetime
    ends_at: datetime
    pool_size: int
    created_by: str
    created_at: datetime
    opened_at: datetime | None
    closed_at: datetime | None
    expected: int = Field(
        0, description="Its members in your scope: of a round placed above it, your part only"
    )


class Slot(BaseModel):
    starts_at: Moment
    ends_at: Moment
    building_ids: list[uuid.UUID] = []


class SiteCreate(BaseModel):
    name: Name = Field(max_length=120, examples=["Gate 2 sampling tent"])
    compound_id: uuid.UUID
    building_ids: list[uuid.UUID] = Field(default=[], description="Buildings the site serves")
    slots: list[Slot] = Field(default=[], description="Time slots, each for some buildings")


class SiteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    round_id: uuid.UUID
    compound_id: uuid.UUID | None
    name: str
    building_ids: list[uuid.UUID] = Field(
        description="Buildings the site serves: of a site placed above your scope (its "
        "compound's, read by a building's leader), only those in your scope"
    )
    slots: list[Slot] = Field(
        description="Its time slots: of a site placed above your scope, only those serving "
        "your buildings (or every building), naming only yours"
    )


# Statuses that tell a positive pool, an invalid tube or a case: health data on any list.
HEALTH_STATUSES = frozenset(
    {
        MemberStatus.retest_required,
        MemberStatus.retest_sampled,
        MemberStatus.resample_required,
        MemberStatus.positive,
    }
)


class DoorToDoorResident(PersonalRecord):
    """A resident to sample at the door. One with an open retest or resample (a positive
    pool, a positive antigen), or whose status tells a positive pool, an invalid tube or a
    case (a sealed resident stays listed after the retest's swab), is health data, named as
    on ``/v1/tasks``."""

    resource: ClassVar[str] = "round_members"
    record_id: ClassVar[str] = "resident_id"

    resident_id: uuid.UUID
    name: PersonalName
    unit_id: uuid.UUID | None
    household_id: uuid.UUID
    phone: PersonalPhone
    reasons: list[Literal["sealed", "bedridden", "disabled", "retest", "resample"]]
    status: str

    def is_health(self) -> bool:
        return bool({"retest", "resample"} & set(self.reasons)) or self.status in HEALTH_STATUSES


class DoorToDoorBuilding(BaseModel):
    building_id: uuid.UUID
    building_code: str | None
    compound_id: uuid.UUID | None
    residents: list[DoorToDoorResident]
