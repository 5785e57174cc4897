import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, Field

from shared.privacy import PersonalPhone, PersonalRecord


class SentMessage(PersonalRecord):
    """What was sent to whom, and why: the rendered text, the template version, the gateway
    and the state; the event or the operator (through the broadcast) that caused it."""

    resource: ClassVar[str] = "messages"

    id: uuid.UUID
    recipient_kind: str
    recipient_id: uuid.UUID
    phone: PersonalPhone
    language: str
    template_key: str
    template_version: int
    text: str
    segments: int
    priority: str
    state: str
    gateway: str | None
    provider_message_id: str | None
    error: str | None
    cause_kind: str
    cause_id: uuid.UUID
    broadcast_id: uuid.UUID | None
    caused_by: str | None
    attempts: int
    send_at: datetime
    valid_until: datetime | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    health_data: bool = Field(
        description="Health data (a positive pool's retest): whom it went to is revealed "
        "only to the roles that see health data"
    )

    def is_health(self) -> bool:
        return self.health_data


class SentPage(BaseModel):
    items: list[SentMessage]
    next_cursor: str | None = None


class MessageCounts(BaseModel):
    """One compound's messages by state, counted in the database (the dashboard)."""

    compound_id: uuid.UUID | None = Field(description="Empty for messages placed in none")
    states: dict[str, int] = Field(description="Messages per state, the states asked for")
