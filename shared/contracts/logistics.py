"""Events the logistics service publishes."""

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import Field

from shared.events import Contract, Event

# ---- stock ----
# Every stock event carries ``stock_version``: the holder's stock version after the change (it
# rises with every change at that holder, under the holder's lock), so a consumer keeping a
# holder's balances applies an event only when it is newer than what it holds.


class StockLine(Contract):
    """One batch's change: positive in, negative out, in the item's unit."""

    item_id: uuid.UUID
    batch_id: uuid.UUID
    batch: str
    expires_on: date | None
    quantity: float
    reason: str | None = None


class StockReceived(Event):
    """Goods arrived at a holder (the town warehouse or a compound's store) from outside."""

    type = "logistics.stock.received"
    receipt_id: uuid.UUID
    holder_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    source: Literal["government", "donation", "purchase"]
    received_at: datetime
    lines: list[StockLine]
    stock_version: int


class DonationReceived(Event):
    """A donation arrived: the donor (a company or a resident; their contact stays in the
    register) and what they gave."""

    type = "logistics.donation.received"
    receipt_id: uuid.UUID
    holder_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    donor: str
    received_at: datetime
    lines: list[StockLine]
    stock_version: int


class TransferLineRecord(Contract):
    line_id: uuid.UUID
    item_id: uuid.UUID
    batch: str
    expires_on: date | None
    dispatched: float
    received: float | None = None
    lost: float | None = None


class StockDispatched(Event):
    """Goods left the town warehouse for a compound's store (off the warehouse's card)."""

    type = "logistics.stock.dispatched"
    transfer_id: uuid.UUID
    from_holder_id: uuid.UUID
    to_holder_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    dispatched_at: datetime
    lines: list[TransferLineRecord]
    stock_version: int


class StockTransferred(Event):
    """A transfer arrived at the compound's store: what was received, and what was lost in
    transit (dispatched − received)."""

    type = "logistics.stock.transferred"
    transfer_id: uuid.UUID
    from_holder_id: uuid.UUID
    to_holder_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    received_at: datetime
    lines: list[TransferLineRecord]
    stock_version: int


class StockAdjusted(Event):
    """Stock was adjusted with a reason (lost, damaged, expired, found, count_correction)."""

    type = "logistics.stock.adjusted"
    document_id: uuid.UUID
    holder_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    at: datetime
    lines: list[StockLine]
    stock_version: int


class StockCounted(Event):
    """A physical count was reconciled: each counted batch's difference from the card
    (zero where the card was right)."""

    type = "logistics.stock.counted"
    count_id: uuid.UUID
    holder_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    at: datetime
    differences: list[StockLine]
    stock_version: int


# ---- distribution ----
DeliveryOutcome = Literal["delivered", "not_delivered"]
NotDeliveredReason = Literal["absent", "refused", "moved", "unit_sealed"]


class ItemQuantity(Contract):
    item_id: uuid.UUID
    quantity: int


class DistributionPlanned(Event):
    """A distribution plan allocated to households: one event per compound it covers (a bulk
    event, never one per household), with that compound's households and quantities."""

    type = "logistics.distribution.planned"
    plan_id: uuid.UUID
    top_up_of: uuid.UUID | None
    name: str
    town_id: uuid.UUID
    compound_id: uuid.UUID
    households: int
    door_deliveries: int = Field(description="Households whose allocation goes to the door")
    items: list[ItemQuantity]


class DeliveryRecord(Contract):
    household_id: uuid.UUID
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    outcome: DeliveryOutcome
    reason: NotDeliveredReason | None
    at: datetime


class DeliveriesRecorded(Event):
    """Deliveries confirmed from a deliverer's phone: one event per request (a whole unit at
    once is one event), for the households whose state changed."""

    type = "logistics.deliveries.recorded"
    plan_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    deliveries: list[DeliveryRecord]
