import uuid
from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.fields import FieldError, FreeText, Moment, Name
from shared.privacy import HealthRecord, PersonalIdNumber, PersonalName, PersonalPhone

ContactKind = Literal["close", "secondary"]


class TransferOut(BaseModel):
    status: Literal["pending", "scheduled", "transferred"]
    due_at: datetime = Field(description="The same-day target, from the town's policy")
    overdue: bool
    scheduled_for: datetime | None
    destination: str | None
    transferred_at: datetime | None
    overdue_reported_at: datetime | None


class CaseOut(HealthRecord):
    """A confirmed case. Name and numbers are health data: masked unless revealed (logged);
    volunteers see no identity."""

    resource: ClassVar[str] = "cases"

    id: uuid.UUID
    resident_id: uuid.UUID
    name: PersonalName
    phone: PersonalPhone
    document_number: PersonalIdNumber
    household_id: uuid.UUID | None
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    round_id: uuid.UUID | None
    tube_id: uuid.UUID | None
    source: str
    confirmed_at: datetime
    transfer: TransferOut


class ContactOut(HealthRecord):
    resource: ClassVar[str] = "contacts"

    id: uuid.UUID
    case_id: uuid.UUID
    resident_id: uuid.UUID | None = Field(description="Empty for someone outside the directory")
    name: PersonalName
    phone: PersonalPhone
    document_number: PersonalIdNumber
    kind: ContactKind
    source: Literal["household", "unit", "manual"]
    quarantine_until: date
    note: str
    created_by: str
    created_at: datetime


class ContactIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"resident_id": "0193a1c2-0000-7000-8000-0000000000a1", "kind": "close"},
                {
                    "name": "张伟",
                    "phone": "13912345678",
                    "kind": "close",
                    "note": "courier, met at the gate on 1 April",
                },
            ]
        }
    )

    resident_id: uuid.UUID | None = Field(None, description="A resident from the directory")
    name: Name | None = Field(
        None, max_length=60, examples=["Courier Wang"], description="For an outsider"
    )
    phone: FreeText | None = Field(None, max_length=20, description="For an outsider")
    kind: ContactKind = "close"
    quarantine_until: date | None = Field(
        None, description="Defaults to the town policy's quarantine for the kind"
    )
    note: FreeText = Field("", max_length=500)

    @model_validator(mode="after")
    def _who(self) -> "ContactIn":
        if (self.resident_id is None) == (self.name is None):
            raise FieldError(
                "resident_id", "give either resident_id or the name (and phone) of an outsider"
            )
        if self.resident_id is not None and self.phone is not None:
            raise FieldError(
                "phone", "a resident's phone comes from the directory; leave phone out"
            )
        return self


class TransferIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "scheduled",
                    "destination": "Fangcang shelter hospital, hall 3",
                    "scheduled_for": "2022-04-02T16:00:00+08:00",
                },
                {"status": "transferred"},
            ]
        }
    )

    status: Literal["pending", "scheduled", "transferred"] = Field(
        description="pending → scheduled → transferred; scheduled again reschedules, "
        "pending again cancels the schedule"
    )
    destination: Name | None = Field(None, max_length=200, examples=["Central isolation hotel"])
    scheduled_for: Moment | None = None

    @model_validator(mode="after")
    def _schedule(self) -> "TransferIn":
        if self.status != "scheduled":
            return self
        for field in ("destination", "scheduled_for"):
            if getattr(self, field) is None:
                raise FieldError(field, "a scheduled transfer needs destination and scheduled_for")
        return self


class CaseCounts(BaseModel):
    """One compound's cases and transfer queue, counted in the database (the dashboard)."""

    compound_id: uuid.UUID | None = Field(description="Empty for cases placed in no compound")
    cases: int = Field(description="Confirmed cases, ever")
    cases_since: int = Field(description="Confirmed at or after `since` (e.g. today's start)")
    transfers_pending: int = Field(description="Waiting for a transfer to be scheduled")
    transfers_scheduled: int = Field(description="Scheduled, not yet transferred")
    transfers_overdue: int = Field(description="Past their target and not transferred")
