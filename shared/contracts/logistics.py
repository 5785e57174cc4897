"""Events the logistics service publishes."""

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import Field

from shared.events import Event

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
    due_at: datetime
    at: datetime


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
    level is raised once. ``grid_ids``: the grids covering the building, for level 2."""

    type = "logistics.request.overdue"
    level: int
    escalated_to: EscalatedTo
    grid_ids: list[uuid.UUID] = Field(default_factory=list)


class CardEvent(RequestEvent):
    """A medicine run's insurance card changed hands; ``label`` is the run's "one person,
    one file" label."""

    label: str
    card_status: CardStatus
    card_due_at: datetime


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
