import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.fields import Moment, Name

TUBE_CODE_PATTERN = r"^[A-Za-z0-9-]+$"
TUBE_CODE_LENGTH = (4, 40)


def normal_tube_code(code: str) -> str:
    """Barcode labels are read in either case: a code is stored, looked up and compared in
    upper case, whichever way it came in (``ab-0001`` is tube ``AB-0001``)."""
    return code.upper()


# Every schema and parameter that takes a tube code takes this one.
TubeCode = Annotated[
    str,
    StringConstraints(
        min_length=TUBE_CODE_LENGTH[0], max_length=TUBE_CODE_LENGTH[1], pattern=TUBE_CODE_PATTERN
    ),
    AfterValidator(normal_tube_code),
]


class TubeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "SH2204020001",
                    "member_ids": ["0193a1c2-0000-7000-8000-0000000000a1"],
                    "collector": "Nurse Li",
                    "collected_at": "2022-04-02T05:12:00+08:00",
                }
            ]
        }
    )

    code: TubeCode = Field(description="The label's barcode, in either case (kept in upper)")
    member_ids: list[uuid.UUID] = Field(min_length=1, max_length=20)
    site_id: uuid.UUID | None = None
    collector: Name = Field(max_length=80, examples=["Nurse Li"])
    collected_at: Moment
    retest: bool = Field(
        False,
        description="A single tube for a resident with an open retest or resample, or a PCR "
        "retest after a positive antigen test (who joins the round if its scope covers them)",
    )


class TubeBatch(BaseModel):
    tubes: list[TubeIn] = Field(min_length=1, max_length=5_000)


class TubeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    round_id: uuid.UUID
    code: str
    pooled: bool
    retest: bool
    size: int
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    site_id: uuid.UUID | None
    collector: str
    collected_at: datetime
    status: str
    lab: str | None
    resulted_at: datetime | None
    member_ids: list[uuid.UUID] = []


class RowError(BaseModel):
    row: int = Field(description="Index of the tube in the batch, from 0")
    code: str
    field: str
    message: str


class BatchOut(BaseModel):
    accepted: int = Field(description="Tubes recorded now")
    unchanged: int = Field(
        description="Tubes recorded before, or earlier in this batch, with the same content"
    )
    errors: list[RowError]
