import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.fields import FreeText


class TripPlan(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"hospital": "Town People's Hospital"}, {}]}
    )

    compound_id: uuid.UUID | None = Field(None, description="Only this compound's runs")
    hospital: FreeText | None = Field(None, max_length=120, description="Only runs to it")


class TripRun(BaseModel):
    request_id: uuid.UUID
    label: str | None
    status: str
    card_status: str | None


class TripOut(BaseModel):
    id: uuid.UUID
    hospital: str
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    created_by: str
    created_at: datetime
    runs: list[TripRun]
