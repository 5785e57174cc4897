import uuid
from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.logistics import (
    CardStatus,
    Priority,
    RequestKind,
    RequestStatus,
    TransportReason,
)
from shared.fields import FieldError, FreeText, Name, Stated
from shared.privacy import PersonalPhone, PersonalRecord

# A reference to a photo or prescription stored elsewhere.
Attachment = Annotated[FreeText, Field(min_length=1, max_length=200)]


class RequestCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resident_id": "0193a1c2-0000-7000-8000-000000000101",
                    "kind": "baby_supplies",
                    "details": "Infant formula, stage 1, two tins",
                    "attachments": ["photo:0193a1c2-0000-7000-8000-00000000a001"],
                },
                {
                    "resident_id": "0193a1c2-0000-7000-8000-000000000102",
                    "kind": "medicine_run",
                    "details": "Blood pressure tablets, 30 days",
                    "hospital": "Town People's Hospital",
                },
            ]
        }
    )

    resident_id: uuid.UUID
    kind: RequestKind
    reason: TransportReason | None = Field(
        None, description="Why a medical transport is needed (required for that kind only)"
    )
    details: FreeText = Field("", max_length=2000)
    attachments: list[Attachment] = Field(
        default=[], max_length=10, description="References to photos or prescriptions"
    )
    hospital: FreeText | None = Field(
        None, max_length=120, description="Where a medicine run or transport goes"
    )

    @model_validator(mode="after")
    def _reason_and_hospital(self) -> "RequestCreate":
        transport_and_hospital(self.kind, self.reason, self.hospital)
        return self


def transport_and_hospital(kind: str, reason: str | None, hospital: str | None) -> None:
    """A transport says why, only a transport has a reason, a medicine run says where its
    card goes: each refusal names its field."""
    if kind == "medical_transport" and reason is None:
        raise FieldError(
            "reason", "a medical_transport needs a reason: dialysis, pregnancy, emergency"
        )
    if kind != "medical_transport" and reason is not None:
        raise FieldError("reason", "reason is for a medical_transport only")
    if kind == "medicine_run" and not (hospital or "").strip():
        raise FieldError("hospital", "a medicine_run needs the hospital its card goes to")


class Assign(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"volunteer_id": "0193a1c2-0000-7000-8000-0000000000f1"},
                {"team": "errands"},
            ]
        }
    )

    volunteer_id: uuid.UUID | None = Field(None, description="A volunteer of the directory")
    team: Name | None = Field(
        None, max_length=80, description="A team's name (not blank)", examples=["errands"]
    )

    @model_validator(mode="after")
    def _one(self) -> "Assign":
        if self.volunteer_id is None and self.team is None:
            raise FieldError("volunteer_id", "give volunteer_id or team, one of them")
        if self.volunteer_id is not None and self.team is not None:
            raise FieldError("team", "give volunteer_id or team, not both")
        return self


class Cancel(BaseModel):
    reason: Stated = Field(
        max_length=200,
        description="Why it is called off (not blank)",
        examples=["moved in with family"],
    )


class CardStep(BaseModel):
    status: CardStatus = Field(
        description="collected → at_hospital → returned, in that order (or collected → "
        "returned when the run is called off)"
    )


class CardOut(BaseModel):
    label: str
    status: CardStatus
    collected_at: datetime | None
    at_hospital_at: datetime | None
    returned_at: datetime | None
    due_at: datetime | None
    overdue: bool


class RequestOut(PersonalRecord):
    resource: ClassVar[str] = "help request"

    id: uuid.UUID
    kind: RequestKind
    reason: TransportReason | None
    priority: Priority
    status: RequestStatus
    resident_id: uuid.UUID
    name: str | None = Field(description="The resident")
    phone: PersonalPhone
    address: str = Field(
        description="Building, unit and room; a volunteer sees the room only while the errand "
        "is theirs to run"
    )
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    details: str
    attachments: list[str]
    hospital: str | None
    created_by: str
    created_at: datetime
    due_at: datetime
    seconds_left: int = Field(description="Until the due time; negative once past it")
    overdue: bool
    escalation_level: int
    assignee_id: uuid.UUID | None
    team: str | None
    assigned_at: datetime | None
    started_at: datetime | None
    done_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    recurrence_id: uuid.UUID | None
    trip_id: uuid.UUID | None
    card: CardOut | None
    revision: int


class RequestCounts(BaseModel):
    """One compound's requests still to run, counted in the database (the dashboard)."""

    compound_id: uuid.UUID | None = Field(description="Empty for residents placed in none")
    open: int = Field(description="Not done yet: open, assigned or in progress")
    overdue: int = Field(description="Of those, past their due time: `?overdue=true`")


class Suggestion(PersonalRecord):
    resource: ClassVar[str] = "volunteer"

    id: uuid.UUID
    name: str
    phone: PersonalPhone
    skills: list[str]
    availability: str
    assigned_via: Literal["building", "grid", "compound"]
    open_errands: int


class SettingsIn(BaseModel):
    urgent_minutes: int = Field(60, ge=5, le=1440)
    high_minutes: int = Field(240, ge=5, le=10080)
    normal_minutes: int = Field(1440, ge=5, le=20160)
    escalate_after_minutes: int = Field(60, ge=5, le=10080)
    card_return_hours: int = Field(24, ge=1, le=336)
    recurring_lead_minutes: int = Field(120, ge=0, le=1440)

    @model_validator(mode="after")
    def _ordered(self) -> "SettingsIn":
        shrinking = "high_minutes" if self.urgent_minutes > self.high_minutes else None
        if self.high_minutes > self.normal_minutes:
            shrinking = "normal_minutes"
        if shrinking is not None:
            raise FieldError(
                shrinking, "targets must not shrink as priority falls: urgent ≤ high ≤ normal"
            )
        return self


class SettingsOut(SettingsIn):
    model_config = ConfigDict(from_attributes=True)

    town_id: uuid.UUID
