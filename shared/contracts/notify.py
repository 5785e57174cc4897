"""Events the notify service publishes."""

import uuid

from shared.events import Contract, Event, Instant

# ---- delivery ----


class MessageOutcome(Contract):
    """One message as its cause knows it; no phone number or text travels."""

    message_id: uuid.UUID
    cause_kind: str
    cause_id: uuid.UUID
    broadcast_id: uuid.UUID | None
    recipient_kind: str
    recipient_id: uuid.UUID
    template_key: str
    at: Instant
    # For a failure: the provider's reason, or ours (expired while unknown, attempts spent).
    reason: str | None = None


class MessagesDelivered(Event):
    """Messages the gateway confirmed delivered to the phone (one event per receipt batch)."""

    type = "notify.message.delivered"
    town_id: uuid.UUID
    messages: list[MessageOutcome]


class MessagesFailed(Event):
    """Messages that will not reach their recipient: a final provider error, an undelivered
    receipt, or transient errors past the last attempt (one event per batch)."""

    type = "notify.message.failed"
    town_id: uuid.UUID
    messages: list[MessageOutcome]


class GatewaySwitched(Event):
    """The dispatcher moved new messages to another SMS gateway, and why."""

    type = "notify.gateway.switched"
    from_gateway: str
    to_gateway: str
    reason: str
    error_rate: float
    latency_ms: float
    at: Instant
