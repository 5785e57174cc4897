"""Events the logistics service publishes."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events import Contract, Event

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
