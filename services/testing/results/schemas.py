import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.testing.tubes.schemas import TubeCode
from shared.fields import FreeText, Moment
from shared.privacy import HealthRecord, PersonalIdNumber, PersonalName, PersonalPhone


class RowErrorOut(BaseModel):
    row: int | None = Field(
        description="CSV: the line, the header is row 1. JSON: the index in results, from 0"
    )
    column: str | None = Field(description="The CSV column or JSON field at fault")
    message: str
    tube_code: str | None = None


class ResultIn(BaseModel):
    """One row of a JSON upload (documentation only: rows are checked one by one, so a bad
    row is reported and the others applied)."""

    tube_code: TubeCode = Field(examples=["SH2204020001"])
    result: Literal["negative", "positive", "invalid"]
    lab: FreeText = Field(max_length=200, examples=["Riverside District Lab"])
    resulted_at: Moment = Field(examples=["2022-04-02T14:30:00+08:00"])


class UploadReport(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    sha256: str
    status: Literal["applied", "duplicate"] = Field(
        "applied",
        description="applied: the good rows are in; duplicate: you uploaded this very file "
        "before (that upload's counts), nothing changed",
    )
    rows: int = Field(description="Result rows read")
    applied: int = Field(description="Tubes resulted by this upload")
    unchanged: int = Field(description="Tubes that had this very result already")
    negative: int
    positive: int
    invalid: int
    people: int = Field(description="Residents whose status this upload changed")
    error_count: int
    errors: list[RowErrorOut] = Field(description="The first 1,000 row errors")
    created_by: str
    created_at: datetime


class PersonResult(HealthRecord):
    """Where one resident stands in a round. Names and numbers are health data: masked
    unless revealed; volunteers see no identity."""

    resource: ClassVar[str] = "results"
    record_id: ClassVar[str] = "resident_id"

    round_id: uuid.UUID
    resident_id: uuid.UUID
    name: PersonalName
    phone: PersonalPhone
    document_number: PersonalIdNumber
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    status: str
    tube_id: uuid.UUID | None
    sampled_at: datetime | None
    resulted_at: datetime | None
