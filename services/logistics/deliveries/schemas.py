import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.logistics import DeliveryOutcome, NotDeliveredReason
from shared.fields import FieldError, FreeText, Moment, Name

# The phone's own id for a confirmation, made when it was recorded (offline or not).
ClientRef = Annotated[
    str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:-]+$", examples=["p7-0001"])
]


class Rejected(BaseModel):
    """Part of a household's allocation it turned back (damaged, not needed): released to
    the store rather than issued."""

    item_id: uuid.UUID = Field(description="A line's item or kit, as the plan allocated it")
    quantity: int = Field(ge=1, le=100)


class Outcome(BaseModel):
    outcome: DeliveryOutcome
    reason: NotDeliveredReason | None = Field(
        None,
        description="Why not delivered: absent, refused, moved, or unit_sealed (the "
        "household goes to door delivery, pending)",
    )
    received_by: Name | None = Field(
        None,
        max_length=60,
        description="Who took it (required when delivered); not blank",
        examples=["Wang Xiuying"],
    )
    photo_ref: FreeText | None = Field(None, max_length=200)
    code: str | None = Field(
        None, pattern=r"^[A-Za-z0-9]{1,20}$", description="The code the household read out"
    )
    rejected: list[Rejected] = Field(
        default_factory=list,
        max_length=20,
        description="Delivered, but these quantities were turned back: only what was "
        "accepted is issued, the rest goes back to the store",
    )
    at: Moment = Field(
        description="When it happened: not in the future nor before the plan was made, "
        "within the clocks' tolerance (CORDON_CLOCK_SKEW_MINUTES)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "Outcome":
        if self.rejected and self.outcome != "delivered":
            raise FieldError("rejected", "only a delivered household turns goods back")
        if self.outcome == "delivered" and self.received_by is None:
            raise FieldError("received_by", "a delivery needs received_by: who took it")
        if self.outcome == "delivered" and self.reason is not None:
            raise FieldError("reason", "a delivered household has no reason")
        if self.outcome == "not_delivered" and self.reason is None:
            raise FieldError("reason", "not delivered needs a reason")
        if self.outcome == "not_delivered" and self.received_by is not None:
            # Nobody took it: a name here would read as a receipt in the history.
            raise FieldError("received_by", "not delivered: nobody received it")
        return self


class DeliveryIn(Outcome):
    client_ref: ClientRef
    household_id: uuid.UUID


class DeliveryBatch(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "deliveries": [
                        {
                            "client_ref": "p7-0001",
                            "household_id": "0193a1c2-0000-7000-8000-0000000000a1",
                            "outcome": "delivered",
                            "received_by": "Wang Xiuying",
                            "at": "2022-04-05T09:12:00+08:00",
                        },
                        {
                            "client_ref": "p7-0002",
                            "household_id": "0193a1c2-0000-7000-8000-0000000000a2",
                            "outcome": "not_delivered",
                            "reason": "absent",
                            "at": "2022-04-05T09:14:00+08:00",
                        },
                    ]
                }
            ]
        }
    )

    deliveries: list[DeliveryIn] = Field(min_length=1, max_length=1_000)


class UnitDelivery(Outcome):
    """One confirmation for every household of a unit not delivered yet, except those marked
    refused, moved or unit_sealed before (left as they are, reported in ``kept``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_ref": "p7-unit-0003",
                    "outcome": "delivered",
                    "received_by": "Building leader Zhao",
                    "at": "2022-04-05T10:00:00+08:00",
                }
            ]
        }
    )

    client_ref: ClientRef

    @model_validator(mode="after")
    def _whole(self) -> "UnitDelivery":
        if self.rejected:
            raise ValueError("goods turned back are confirmed household by household")
        return self


class HouseholdState(BaseModel):
    household_id: uuid.UUID
    status: str
    reason: str | None
    door_delivery: bool
    door_reason: str | None


class RowError(BaseModel):
    row: int = Field(description="Index of the confirmation in the request, from 0")
    field: str
    message: str


class DeliveryResult(BaseModel):
    changed: int = Field(description="Confirmations applied now")
    unchanged: int = Field(description="Confirmations received before (same client_ref)")
    households: list[HouseholdState]
    errors: list[RowError]
    kept: list[HouseholdState] = Field(
        default_factory=list,
        description="A whole unit's confirmation: the households it left as they were, marked "
        "earlier as refused or moved, or waiting for their door delivery (unit_sealed); "
        "confirm them one by one",
    )
