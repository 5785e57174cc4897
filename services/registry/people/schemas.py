import uuid
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.registry.documents import Phone
from services.registry.models import PersonKind, TeamKind, VolunteerKind
from shared import fields
from shared.fields import FreeText, Patch
from shared.privacy import Personal, PersonalField, PersonalRecord

Name = Field(min_length=1, max_length=60, examples=["陈建国"])


def _skills(values: list[str]) -> list[str]:
    # Stored as given apart from case and spacing, so a filter by skill finds them all.
    cleaned = (" ".join(v.split()).lower() for v in values)
    return list(dict.fromkeys(v for v in cleaned if v))


Skill = Annotated[FreeText, Field(min_length=1, max_length=40)]
Skills = Annotated[list[Skill], Field(max_length=20), AfterValidator(_skills)]


class Placement(BaseModel):
    """Where a person or team belongs: the most specific of the three given counts."""

    town_id: uuid.UUID | None = Field(default=None, description="For town-wide people")
    committee_id: uuid.UUID | None = Field(
        default=None, description="For a committee's own people and teams"
    )
    compound_id: uuid.UUID | None = Field(default=None, description="For a compound's")


class StaffCreate(Placement):
    name: FreeText = Name
    phone: Phone = Field(default=None, examples=["13912345678"])
    title: FreeText = Field(min_length=1, max_length=80, examples=["committee secretary"])


class StaffUpdate(Patch):
    name: FreeText | None = Field(default=None, min_length=1, max_length=60)
    phone: Phone = None
    title: FreeText | None = Field(default=None, min_length=1, max_length=80)


class PlacedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    town_id: uuid.UUID
    committee_id: uuid.UUID | None
    compound_id: uuid.UUID | None


class PersonOut(PlacedOut, PersonalRecord):
    name: str
    phone: Annotated[str | None, Personal(PersonalField.phone)] = Field(
        description="Masked unless revealed"
    )


class StaffOut(PersonOut):
    resource: ClassVar[str] = "staff"

    title: str


class VolunteerCreate(Placement):
    name: FreeText = Name
    phone: Phone = Field(default=None, examples=["13712345678"])
    kind: VolunteerKind = Field(
        description="expert (doctors, counsellors), service (hands), resource (vehicles, goods)"
    )
    skills: Skills = Field(default_factory=list, examples=[["driving", "first aid"]])
    availability: FreeText = Field(default="", max_length=200, examples=["evenings and weekends"])


class VolunteerUpdate(Patch):
    name: FreeText | None = Field(default=None, min_length=1, max_length=60)
    phone: Phone = None
    kind: VolunteerKind | None = None
    skills: Skills | None = None
    availability: FreeText | None = Field(default=None, max_length=200, examples=["mornings only"])


class VolunteerOut(PersonOut):
    resource: ClassVar[str] = "volunteer"

    kind: VolunteerKind
    skills: list[str]
    availability: str


class TeamCreate(BaseModel):
    kind: TeamKind
    name: fields.Name = Field(
        max_length=120,
        examples=["Building 3 sampling team"],
        description="Not blank (stripped of surrounding spaces); unique in its compound, or "
        "among its committee's own teams: a name taken there is a 409 naming `name`",
    )
    committee_id: uuid.UUID | None = Field(default=None, description="For a committee's team")
    compound_id: uuid.UUID | None = Field(default=None, description="For a compound's team")


class TeamUpdate(Patch):
    name: fields.Name = Field(
        max_length=120,
        examples=["Building 3 sampling team"],
        description="Not blank; not a name another team has where it belongs",
    )


class TeamOut(PlacedOut):
    kind: TeamKind
    name: str


class PersonRef(BaseModel):
    person_kind: PersonKind
    person_id: uuid.UUID


class MemberOut(PersonRef):
    id: uuid.UUID
    team_id: uuid.UUID
    name: str | None = Field(description="Empty when the person is outside your scope")


class AssignmentCreate(PersonRef):
    compound_id: uuid.UUID | None = None
    grid_id: uuid.UUID | None = None
    building_id: uuid.UUID | None = None
    duty: FreeText = Field(default="", max_length=80, examples=["building leader"])


class AssignmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    person_kind: PersonKind
    person_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    grid_id: uuid.UUID | None
    building_id: uuid.UUID | None
    duty: str
    assigned_at: datetime
