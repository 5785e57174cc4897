import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from services.logistics.stock.quantities import Amount, Counted, Quantity
from shared.fields import FreeText


class TransferLineIn(BaseModel):
    item_id: uuid.UUID
    quantity: Quantity


class TransferCreate(BaseModel):
    """From the town warehouse to a compound's store, earliest expiry first."""

    to_holder_id: uuid.UUID = Field(description="The compound whose store receives")
    note: FreeText = Field("", max_length=500)
    lines: list[TransferLineIn] = Field(min_length=1, max_length=500)


class ReceivedLine(BaseModel):
    line_id: uuid.UUID
    received: Counted = Field(description="What arrived of this line (the rest was lost)")


class TransferReceive(BaseModel):
    note: FreeText = Field("", max_length=500)
    lines: list[ReceivedLine] = Field(
        default=[],
        max_length=2000,
        description="Lines not named arrived whole; a line named twice is refused (422 "
        "naming the repeat, `lines.N.line_id`)",
    )


class TransferLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    item_id: uuid.UUID
    batch: str
    expires_on: date | None
    dispatched: Amount
    received: Amount | None
    lost: Amount | None


class TransferOut(BaseModel):
    id: uuid.UUID
    from_holder_id: uuid.UUID
    to_holder_id: uuid.UUID
    status: str
    note: str
    dispatched_at: datetime
    dispatched_by: str
    received_at: datetime | None
    received_by: str | None
    lines: list[TransferLineOut]
