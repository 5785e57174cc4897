"""The notify service's tables. Its directory of places, households, residents, zones and
people is the shared projection of registry events (``shared/directory``, never the
registry's tables); every placed row carries town, committee, compound and building ids
(:class:`~shared.auth.Scoped`) so that scope filtering needs no joins."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Float, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from shared.auth import Scoped
from shared.db import define_kernel_tables, new_metadata, utc_datetime
from shared.directory import Directory, define_directory
from shared.ids import new_id


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: utc_datetime(), uuid.UUID: Uuid}


SERVICE = "notify"
kernel = define_kernel_tables(Base.metadata)
# The registry's places, households, residents, zones and people as this service knows them.
directory = Directory(define_directory(Base))


# ---- messages (delivery) ----
# One row per recipient and cause: the unit of delivery, its state machine and its attempts.
# Written only by ``services/notify/messages/service.py`` (``enqueue``) and the dispatcher.


class MessageState(StrEnum):
    queued = "queued"
    # Claimed by a dispatcher (with a lease) and being handed to a gateway.
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    failed = "failed"
    expired = "expired"
    cancelled = "cancelled"
    # Waiting for quiet hours to end (or a cap's next day).
    deferred = "deferred"
    # A gateway call whose outcome nobody knows (a timeout): reconciled before any retry.
    unknown = "unknown"


# States a message never leaves.
FINAL_STATES = frozenset(
    {MessageState.delivered, MessageState.failed, MessageState.expired, MessageState.cancelled}
)


class Priority(StrEnum):
    urgent = "urgent"
    high = "high"
    normal = "normal"
    bulk = "bulk"


# The claim's order: a lower rank is sent first.
PRIORITY_RANK = {Priority.urgent: 0, Priority.high: 1, Priority.normal: 2, Priority.bulk: 3}


class CauseKind(StrEnum):
    event = "event"
    broadcast = "broadcast"


class RecipientKind(StrEnum):
    resident = "resident"
    staff = "staff"
    volunteer = "volunteer"


class Message(Scoped, Base):
    """One SMS to one person for one cause. ``key`` (cause, recipient, template) is unique:
    a second enqueue of the same thing is a no-op, whoever retries it. Placed where the
    recipient lives or works, so scope filtering covers progress and audit reads."""

    __tablename__ = "messages"
    __table_args__ = (
        # The dispatcher's claim: waiting messages by lane (urgent first), then time, read
        # in index order (a partial index: an IN over two states in a plain one would sort
        # the whole queue for every claim).
        Index(
            "ix_messages_due",
            "rank",
            "next_attempt_at",
            postgresql_where=text("state IN ('queued', 'deferred')"),
            sqlite_where=text("state IN ('queued', 'deferred')"),
        ),
        # Unknown batches to reconcile and abandoned claims: partial too, so that the many
        # sent and delivered rows cost this index nothing.
        Index(
            "ix_messages_in_flight",
            "state",
            "next_attempt_at",
            postgresql_where=text("state IN ('sending', 'unknown')"),
            sqlite_where=text("state IN ('sending', 'unknown')"),
        ),
        # A batch handed to a gateway in one call, found again to reconcile it.
        Index("ix_messages_batch", "batch_id"),
    )
    # Every state change writes a new entry in each index: a message keeps the scope's
    # town and compound indexes (audit reads), not the committee's and building's.
    committee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    building_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(240), unique=True)
    cause_kind: Mapped[str] = mapped_column(String(10))
    cause_id: Mapped[uuid.UUID]
    broadcast_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    recipient_kind: Mapped[str] = mapped_column(String(10))
    recipient_id: Mapped[uuid.UUID]
    phone: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(8))
    template_key: Mapped[str] = mapped_column(String(80))
    template_version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(8))
    # The priority as a number (0 urgent … 3 bulk), so the claim orders by an index.
    rank: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[str] = mapped_column(String(10))
    send_at: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the dispatcher may look at it next: send_at, a retry's backoff, quiet hours' end.
    next_attempt_at: Mapped[datetime]
    # A ``sending`` claim older than this was abandoned (a crash): reconcile its batch.
    lease_until: Mapped[datetime | None]
    # The gateway call it was (last) handed in; the effect key is derived from it.
    batch_id: Mapped[uuid.UUID | None]
    gateway: Mapped[str | None] = mapped_column(String(40))
    provider_message_id: Mapped[str | None] = mapped_column(String(120))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class GatewaySwitch(Base):
    """Each time the dispatcher moved to another gateway (or back), and why: the health
    figures that crossed the threshold. Not placed: gateways serve the whole deployment."""

    __tablename__ = "gateway_switches"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(index=True)
    from_gateway: Mapped[str] = mapped_column(String(40))
    to_gateway: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(500))
    error_rate: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
