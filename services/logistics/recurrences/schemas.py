import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.logistics.requests.schemas import transport_and_hospital
from shared.contracts.logistics import RequestKind, TransportReason
from shared.fields import FieldError, FreeText

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
RecurrenceStatus = Literal["active", "ended", "stopped"]


class RecurrenceCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resident_id": "0193a1c2-0000-7000-8000-000000000103",
                    "kind": "medical_transport",
                    "reason": "dialysis",
                    "weekdays": ["mon", "wed", "fri"],
                    "at": "07:30",
                    "starts_on": "2022-04-04",
                    "hospital": "Town People's Hospital, dialysis unit",
                }
            ]
        }
    )

    resident_id: uuid.UUID
    kind: RequestKind
    reason: TransportReason | None = None
    details: FreeText = Field("", max_length=2000)
    hospital: FreeText | None = Field(None, max_length=120)
    weekdays: list[Weekday] = Field(min_length=1, max_length=7)
    at: str = Field(
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Local time of the town, HH:MM",
        examples=["07:30"],
    )
    starts_on: date
    ends_on: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "RecurrenceCreate":
        transport_and_hospital(self.kind, self.reason, self.hospital)
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise FieldError("ends_on", "ends_on must not be before starts_on")
        return self


class RecurrenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    resident_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    kind: str
    reason: str | None
    details: str
    hospital: str | None
    weekdays: list[str]
    at_time: str
    starts_on: date
    ends_on: date | None
    active: bool = Field(description="Still making its occurrences (`status` is `active`)")
    status: RecurrenceStatus = Field(
        description="`active`: making its occurrences; `ended`: past `ends_on` on the town "
        "office's calendar; `stopped`: stopped (`/stop`). Those made stay either way"
    )
    created_by: str
    created_at: datetime
