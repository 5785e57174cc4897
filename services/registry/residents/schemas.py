import uuid
from datetime import date, datetime
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.registry.documents import (
    DocumentType,
    Phone,
    Sex,
    id_card_birth_date,
    id_card_sex,
    validate_document,
)
from services.registry.models import Language, Tag, ZoneLevel
from shared.fields import FreeText, Name, Patch
from shared.privacy import Personal, PersonalField, PersonalRecord


class HouseholdCreate(BaseModel):
    building_id: uuid.UUID
    unit_id: uuid.UUID | None = Field(
        default=None,
        description="The unit (stairwell) of the building: required when the building has "
        "units, empty for a building without (a self-built house)",
    )
    code: Name = Field(
        max_length=40,
        examples=["1201-A"],
        description="The household's code in its unit (or building); trimmed, not blank",
    )
    room: FreeText | None = Field(default=None, max_length=40, examples=["1201"])


class HouseholdOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    code: str
    room: str | None


class ResidentFields(BaseModel):
    name: Name = Field(max_length=60, examples=["王秀英"], description="Trimmed; not blank")
    phone: Phone = Field(default=None, examples=["13812345678"])
    tags: list[Tag] = Field(default_factory=list, examples=[["elderly", "living_alone"]])
    care_notes: FreeText | None = Field(default=None, max_length=500, examples=["insulin daily"])
    language: Language = Field(
        default=Language.zh_cn, description="The language of the messages they receive"
    )
    opted_out: bool = Field(
        default=False,
        description="Declines optional messages; alerts about their safety still reach them",
    )


class ResidentCreate(ResidentFields):
    household_id: uuid.UUID
    document_type: DocumentType = DocumentType.ID_CARD
    document_number: FreeText = Field(max_length=40, examples=["11010519491231002X"])
    birth_date: date | None = Field(
        default=None,
        validate_default=True,
        description="Read from an 18-digit ID number when empty",
    )
    sex: Sex | None = Field(
        default=None,
        validate_default=True,
        description="Read from an 18-digit ID number when empty",
    )

    @field_validator("document_number")
    @classmethod
    def _valid_document(cls, number: str, info: ValidationInfo) -> str:
        document_type = info.data.get("document_type", DocumentType.ID_CARD)
        return validate_document(document_type=document_type, number=number)

    @field_validator("birth_date")
    @classmethod
    def _birth_matches(cls, born: date | None, info: ValidationInfo) -> date | None:
        number = _id_number(info)
        if number is None:
            return born
        if born not in (None, id_card_birth_date(number)):
            raise ValueError(f"{born} contradicts the birth date in the ID number")
        return id_card_birth_date(number)

    @field_validator("sex")
    @classmethod
    def _sex_matches(cls, sex: Sex | None, info: ValidationInfo) -> Sex | None:
        number = _id_number(info)
        if number is None:
            return sex
        if sex not in (None, id_card_sex(number)):
            raise ValueError(f"{sex} contradicts the sex in the ID number")
        return id_card_sex(number)


def _id_number(info: ValidationInfo) -> str | None:
    is_id_card = info.data.get("document_type") is DocumentType.ID_CARD
    return info.data.get("document_number") if is_id_card else None


class ResidentUpdate(Patch):
    name: Name | None = Field(default=None, max_length=60, description="Trimmed; not blank")
    phone: Phone = None
    tags: list[Tag] | None = None
    care_notes: FreeText | None = Field(default=None, max_length=500)
    language: Language | None = None
    opted_out: bool | None = None


class ResidentMove(BaseModel):
    household_id: uuid.UUID
    reason: FreeText = Field(default="", max_length=500, examples=["moved in with daughter"])


class ResidentOut(PersonalRecord):
    resource: ClassVar[str] = "resident"

    id: uuid.UUID
    household_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    name: str
    document_type: DocumentType
    document_number: Annotated[str, Personal(PersonalField.id_number)] = Field(
        description="Masked to its last four characters unless revealed"
    )
    phone: Annotated[str | None, Personal(PersonalField.phone)] = Field(
        description="Masked unless revealed"
    )
    birth_date: Annotated[date | None, Personal(PersonalField.birth_date)] = Field(
        description="Part of an ID card number: shown only with the number revealed"
    )
    birth_year: int | None = Field(description="Always shown: the age a list needs")
    sex: Sex | None
    tags: list[str]
    care_notes: str | None
    language: Language
    opted_out: bool
    zone: ZoneLevel | None = Field(default=None, description="The unit's zone, else the building's")
    registered_at: datetime
    updated_at: datetime


class MoveOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    resident_id: uuid.UUID
    from_household_id: uuid.UUID | None
    to_household_id: uuid.UUID
    reason: str
    moved_by: str
    moved_at: datetime


class CountRow(BaseModel):
    compound_id: uuid.UUID | None = None
    building_id: uuid.UUID | None = None
    unit_id: uuid.UUID | None = None
    residents: int
    tags: dict[str, int] = Field(description="Residents per tag within the group")
