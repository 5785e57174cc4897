import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.logistics.models import AdjustmentReason, StockSource
from services.logistics.stock.quantities import Amount, Change, Counted, Quantity, Stored
from shared.fields import FreeText, Moment, Name

HOLDER = "The town (its warehouse) or a compound (its store)"


class ReceiptLine(BaseModel):
    item_id: uuid.UUID
    quantity: Quantity
    batch: FreeText = Field("", max_length=60, description="The batch or lot printed on it")
    expires_on: date | None = Field(
        None,
        description="Required for perishable items; not before today (the town office's "
        "date), whatever `received_at` says, else 422 naming this field: expired goods are "
        "not received as stock",
    )


class ReceiptCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "holder_id": "0193a1c2-0000-7000-8000-00000000000c",
                    "source": "donation",
                    "donor": "Riverside Rice Co.",
                    "donor_contact": "Mr Chen, 021-5555 0101",
                    "received_at": "2022-04-04T09:30:00+08:00",
                    "lines": [
                        {
                            "item_id": "0193a1c2-0000-7000-8000-0000000000a1",
                            "quantity": "500",
                            "batch": "R-2204",
                            "expires_on": "2099-04-01",
                        }
                    ],
                }
            ]
        }
    )

    holder_id: uuid.UUID = Field(description=HOLDER)
    source: StockSource
    donor: Name | None = Field(
        None,
        max_length=120,
        description="Required for donations; stripped, blank is refused (422 naming it)",
        examples=["Riverside Rice Co."],
    )
    donor_contact: FreeText | None = Field(None, max_length=120)
    note: FreeText = Field("", max_length=500)
    received_at: Moment | None = Field(
        None,
        description="When the goods arrived (by default now); not in the future beyond the "
        "clocks' tolerance, nor more than `CORDON_BACKDATE_DAYS` (60 by default) back (422 "
        "naming this field): goods are recorded once they came, and a year mistyped would "
        "head the stock card. It does not move the expiry check, which is today's",
    )
    lines: list[ReceiptLine] = Field(min_length=1, max_length=500)


class EntryOut(BaseModel):
    """A line of a holder's stock card."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    holder_id: uuid.UUID
    item_id: uuid.UUID
    batch_id: uuid.UUID
    kind: str
    quantity: Stored = Field(description="Signed: in positive, out negative")
    reason: str | None
    document_id: uuid.UUID
    reference_kind: str | None
    reference_id: uuid.UUID | None
    reference_label: str | None
    to_building_id: uuid.UUID | None
    to_household_id: uuid.UUID | None = Field(
        description="A plan's issue: the household the goods were delivered to"
    )
    note: str
    at: datetime
    recorded_by: str
    holder_version: int


class ReceiptOut(BaseModel):
    id: uuid.UUID
    holder_id: uuid.UUID
    source: str
    donor: str | None
    received_at: datetime
    entries: list[EntryOut]


class AdjustmentLine(BaseModel):
    batch_id: uuid.UUID | None = Field(None, description="The batch changed")
    item_id: uuid.UUID | None = Field(
        None,
        description="Found goods of no batch: the item; with a batch, its item (another is "
        "a 422 naming this field)",
    )
    expires_on: date | None = None
    batch: FreeText = Field("", max_length=60)
    quantity: Change = Field(description="Signed: negative takes off, positive adds")
    reason: AdjustmentReason


class AdjustmentCreate(BaseModel):
    holder_id: uuid.UUID = Field(description=HOLDER)
    note: FreeText = Field("", max_length=500)
    lines: list[AdjustmentLine] = Field(min_length=1, max_length=500)


class CountLine(BaseModel):
    batch_id: uuid.UUID
    counted: Counted


class CountCreate(BaseModel):
    holder_id: uuid.UUID = Field(description=HOLDER)
    note: FreeText = Field("", max_length=500)
    lines: list[CountLine] = Field(min_length=1, max_length=2000)


class CountLineOut(BaseModel):
    batch_id: uuid.UUID
    item_id: uuid.UUID
    expected: Amount
    counted: Amount
    difference: Amount


class CountOut(BaseModel):
    id: uuid.UUID
    holder_id: uuid.UUID
    counted_at: datetime
    counted_by: str
    lines: list[CountLineOut]


class BatchBalance(BaseModel):
    batch_id: uuid.UUID
    batch: str
    expires_on: date | None
    expired: bool = Field(description="Past its expiry on the town office's calendar")
    on_hand: Amount
    reserved: Amount
    available: Amount = Field(description="On hand − reserved; 0 once expired")


class Balance(BaseModel):
    """An item at a holder: on hand, reserved, available (= on hand − reserved of the batches
    not expired: what a plan, a transfer or an issue can still take), expired (on hand in
    expired batches, to adjust off), by batch."""

    holder_id: uuid.UUID
    holder: str
    item_id: uuid.UUID
    item: str
    unit: str
    on_hand: Amount
    reserved: Amount
    available: Amount
    expired: Amount = Field(description="On hand in batches past their expiry: adjust it off")
    batches: list[BatchBalance]


class IssueLine(BaseModel):
    item_id: uuid.UUID
    quantity: Quantity


class IssueCreate(BaseModel):
    """Goods handed out at once for a help request (or a plan), earliest expiry first."""

    holder_id: uuid.UUID = Field(description=HOLDER)
    reference_kind: Literal["plan", "request"] = "request"
    reference_id: uuid.UUID = Field(
        description="The help request (or distribution plan) the goods are for: one in your "
        "scope, else 404 naming this field"
    )
    reference_label: FreeText = Field("", max_length=200)
    building_id: uuid.UUID | None = Field(
        None,
        description="Where the goods went: a building in your scope, else 404; for a help "
        "request its resident's building (the default; another is a 422)",
    )
    note: FreeText = Field("", max_length=500)
    lines: list[IssueLine] = Field(min_length=1, max_length=500)


class IssuedOut(BaseModel):
    """What left the store, batch by batch."""

    item_id: uuid.UUID
    batch_id: uuid.UUID
    batch: str
    expires_on: date | None
    quantity: Amount


class ReservationOut(BaseModel):
    """Stock of one batch held for a plan or a request, and what became of it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    holder_id: uuid.UUID
    item_id: uuid.UUID
    batch_id: uuid.UUID
    reference_kind: str
    reference_id: uuid.UUID
    reference_label: str
    held: Stored
    issued: Stored
    released: Stored
    created_at: datetime
