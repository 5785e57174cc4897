import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RowErrorOut(BaseModel):
    row: int = Field(description="Spreadsheet row; the header is row 1")
    column: str | None
    message: str


class ImportReport(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID | None = Field(description="Empty when the file was rejected")
    filename: str
    status: Literal["applied", "rejected", "duplicate"] = Field(
        description="applied: the whole file is in; rejected: nothing changed, see errors; "
        "duplicate: this very file was applied before as an import you can read (one placed "
        "inside your scope), nothing changed"
    )
    rows: int
    inserted: int
    updated: int
    unchanged: int
    households_created: int = 0
    errors: list[RowErrorOut] = Field(default_factory=list)


class ImportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    sha256: str
    status: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    created_by: str
    created_at: datetime
