"""Events the logistics service publishes."""

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from shared.events import Contract, Event, Instant

# ---- disinfection ----

DisinfectionTargetName = Literal["building", "lift", "sampling_site", "unit", "stairwell"]


class DisinfectionScheduled(Event):
    """A disinfection schedule was set up or changed: its frequency (risen while its area is
    sealed), who answers for it, or its end. ``schedule_version`` grows with every change,
    so a consumer keeps the newest."""

    type = "logistics.disinfection.scheduled"
    schedule_id: uuid.UUID
    schedule_version: int
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    target: DisinfectionTargetName
    label: str
    reason: Literal["manual", "sealed", "case"]
    per_day: int
    zone_level: Literal["sealed", "controlled", "precaution"] | None
    responsible_person_id: uuid.UUID | None
    team: str
    active: bool
    until: Instant | None = Field(description="When a case's stairwell schedule ends")


class DisinfectionDone(Event):
    """A disinfection task was done (``late`` when after its slot had been missed)."""

    type = "logistics.disinfection.done"
    task_id: uuid.UUID
    task_version: int
    schedule_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    slot_at: Instant
    done_at: Instant
    done_by: str
    done_by_person_id: uuid.UUID | None
    late: bool


class DisinfectionMissed(Event):
    """A disinfection slot passed without the task being done."""

    type = "logistics.disinfection.missed"
    task_id: uuid.UUID
    task_version: int
    schedule_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    label: str
    slot_at: Instant
    due_at: Instant


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
    received_at: Instant
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
    received_at: Instant
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
    dispatched_at: Instant
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
    received_at: Instant
    lines: list[TransferLineRecord]
    stock_version: int


class StockAdjusted(Event):
    """Stock was adjusted with a reason (lost, damaged, expired, found, count_correction)."""

    type = "logistics.stock.adjusted"
    document_id: uuid.UUID
    holder_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    at: Instant
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
    at: Instant
    differences: list[StockLine]
    stock_version: int


# ---- requests ----

RequestKind = Literal["medicine_run", "baby_supplies", "groceries", "medical_transport", "other"]
TransportReason = Literal["dialysis", "pregnancy", "emergency"]
Priority = Literal["urgent", "high", "normal"]
RequestStatus = Literal["open", "assigned", "in_progress", "done", "closed", "cancelled"]
CardStatus = Literal["collected", "at_hospital", "returned"]
EscalatedTo = Literal["compound", "grid_leader", "town_operator"]


class RequestEvent(Event):
    """What every event about a help request carries: the request, where it is, and its
    ``revision`` (the aggregate's version: a consumer applies only a newer one)."""

    request_id: uuid.UUID
    revision: int
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    resident_id: uuid.UUID
    kind: RequestKind
    priority: Priority
    status: RequestStatus
    due_at: Instant
    at: Instant


class RequestCreated(RequestEvent):
    """A resident's help request was entered (or a recurring one's occurrence appeared)."""

    type = "logistics.request.created"
    reason: TransportReason | None = None
    recurrence_id: uuid.UUID | None = None
    occurs_on: date | None = None


class RequestAssigned(RequestEvent):
    """A request was given to a volunteer (``assignee_id``) or a team (``team``)."""

    type = "logistics.request.assigned"
    assignee_id: uuid.UUID | None = None
    team: str | None = None


class RequestStarted(RequestEvent):
    """The errand is under way."""

    type = "logistics.request.started"


class RequestDone(RequestEvent):
    """The errand was done; the building leader's confirmation for the resident closes it."""

    type = "logistics.request.done"


class RequestClosed(RequestEvent):
    """The resident's confirmation (by their building leader) closed the request."""

    type = "logistics.request.closed"


class RequestCancelled(RequestEvent):
    """A request was cancelled before it was done, with the reason."""

    type = "logistics.request.cancelled"
    cancel_reason: str


class RequestOverdue(RequestEvent):
    """A request passed its due time still open (level 1), then stayed open a further
    interval each time: escalated to the grid leader (2), then the town operator (3). Each
    level is raised once. ``grid_ids``: the grids covering the building, for level 2;
    ``assignee_id``: the volunteer running it, if any (who hears level 1 first)."""

    type = "logistics.request.overdue"
    level: int
    escalated_to: EscalatedTo
    grid_ids: list[uuid.UUID] = Field(default_factory=list)
    assignee_id: uuid.UUID | None = None


class CardEvent(RequestEvent):
    """A medicine run's insurance card changed hands; ``label`` is the run's "one person,
    one file" label."""

    label: str
    card_status: CardStatus
    card_due_at: Instant


class CardCollected(CardEvent):
    """A volunteer took the resident's insurance card (and prescription) for the run."""

    type = "logistics.card.collected"


class CardAtHospital(CardEvent):
    """The card is at the hospital with the run."""

    type = "logistics.card.at_hospital"


class CardReturned(CardEvent):
    """The card is back with its resident."""

    type = "logistics.card.returned"


class CardOverdue(CardEvent):
    """A card was not back with its resident by its due time (raised once)."""

    type = "logistics.card.overdue"


class TripPlanned(Event):
    """Medicine runs to one hospital were grouped into a trip."""

    type = "logistics.trip.planned"
    trip_id: uuid.UUID
    town_id: uuid.UUID
    hospital: str
    request_ids: list[uuid.UUID]


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
    revision: int = Field(
        1, description="The plan's version: 1 planned, 2 cancelled (apply only a newer one)"
    )
    top_up_of: uuid.UUID | None
    name: str
    town_id: uuid.UUID
    compound_id: uuid.UUID
    households: int
    door_deliveries: int = Field(description="Households whose allocation goes to the door")
    items: list[ItemQuantity]


class DistributionCancelled(Event):
    """A distribution plan was cancelled: one event per compound it covers (also one where
    every household was delivered: then ``households`` is 0 and ``items`` empty), with the
    households not delivered there, now to be delivered no more, and what was allocated to
    them (given back to the store); what was delivered stays issued."""

    type = "logistics.distribution.cancelled"
    plan_id: uuid.UUID
    revision: int = Field(2, description="The plan's version: 2, after its planning's 1")
    name: str
    town_id: uuid.UUID
    compound_id: uuid.UUID
    reason: str
    cancelled_by: str
    at: Instant
    households: int = Field(description="Households not delivered, whose allocation was released")
    items: list[ItemQuantity] = Field(description="Released: what those households were allocated")


class DeliveryRecord(Contract):
    household_id: uuid.UUID
    building_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    outcome: DeliveryOutcome
    reason: NotDeliveredReason | None
    rejected: list[ItemQuantity] = Field(
        default_factory=list, description="Delivered, but turned back (released, not issued)"
    )
    at: Instant


class DeliveriesRecorded(Event):
    """Deliveries confirmed from a deliverer's phone: one event per request (a whole unit at
    once is one event), for the households whose state changed."""

    type = "logistics.deliveries.recorded"
    plan_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    deliveries: list[DeliveryRecord]
