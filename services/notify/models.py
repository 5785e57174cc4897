"""The notify service's tables. Its directory of places, households, residents, zones and
people is the shared projection of registry events (``shared/directory``, never the
registry's tables); every placed row carries town, committee, compound and building ids
(:class:`~shared.auth.Scoped`) so that scope filtering needs no joins."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from shared.auth import Scoped
from shared.db import define_kernel_tables, new_metadata, partial_index, utc_datetime
from shared.directory import Directory, define_directory
from shared.ids import new_id


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: utc_datetime(), uuid.UUID: Uuid}


SERVICE = "notify"
kernel = define_kernel_tables(Base.metadata)
# The registry's places, households, residents, zones and people as this service knows them.
directory = Directory(define_directory(Base))
DirectoryPlace = directory.models.Place
DirectoryResident = directory.models.Resident
DirectoryZone = directory.models.Zone
DirectoryPerson = directory.models.Person
DirectoryAssignment = directory.models.Assignment
DirectoryGridBuilding = directory.models.GridBuilding


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
        partial_index(
            "ix_messages_due", "rank", "next_attempt_at", where="state IN ('queued', 'deferred')"
        ),
        # Unknown batches to reconcile and abandoned claims: partial too, so that the many
        # sent and delivered rows cost this index nothing.
        partial_index(
            "ix_messages_in_flight",
            "state",
            "next_attempt_at",
            where="state IN ('sending', 'unknown')",
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


# ---- messaging: templates, rules, broadcasts ----
# What an operator edits and sends; the messages themselves are the delivery part's.


class Template(Scoped, Base):
    """A town's version of a template. The built-in templates (``templates/catalogue.py``)
    are every town's version 1; an edit adds the next version, never changes one, so a
    message's ``template_version`` always names the text it was rendered from."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("town_id", "key", "version"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200), default="")
    # Variable name → type (str, int, datetime, date, or a glossary type: zone_level,
    # request_kind).
    variables: Mapped[dict[str, str]] = mapped_column(JSON)
    # Locale (zh-CN, en) → text with ``{variable}`` placeholders.
    texts: Mapped[dict[str, str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]


class RuleSetting(Scoped, Base):
    """A town's changes to a built-in rule (``rules/catalogue.py``): switched off, another
    template, priority or validity. A rule without a row runs as built."""

    __tablename__ = "rule_settings"
    __table_args__ = (UniqueConstraint("town_id", "rule"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    rule: Mapped[str] = mapped_column(String(60))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    template_key: Mapped[str | None] = mapped_column(String(80))
    priority: Mapped[str | None] = mapped_column(String(8))
    validity_minutes: Mapped[int | None] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime]


class BroadcastStatus(StrEnum):
    # Town-wide: waiting for a second town operator.
    awaiting_approval = "awaiting_approval"
    # Its messages are being enqueued in batches (a large scope, by the enqueue job).
    enqueuing = "enqueuing"
    enqueued = "enqueued"
    cancelled = "cancelled"
    superseded = "superseded"


class Broadcast(Scoped, Base):
    """An operator's message to everyone in a scope, placed where the scope's places meet."""

    __tablename__ = "broadcasts"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    town_wide: Mapped[bool] = mapped_column(Boolean, default=False)
    template_key: Mapped[str] = mapped_column(String(80))
    template_version: Mapped[int] = mapped_column(Integer)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[str] = mapped_column(String(8))
    # Optional messages skip residents who opted out; urgent ones never are optional.
    optional: Mapped[bool] = mapped_column(Boolean)
    send_at: Mapped[datetime]
    valid_until: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), index=True)
    # Who it reaches, counted when it is created (and again as it is enqueued).
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    skipped_no_phone: Mapped[int] = mapped_column(Integer, default=0)
    skipped_opted_out: Mapped[int] = mapped_column(Integer, default=0)
    enqueued: Mapped[int] = mapped_column(Integer, default=0)
    # The last resident id enqueued: the enqueue job goes on after it.
    cursor: Mapped[uuid.UUID | None]
    supersedes_id: Mapped[uuid.UUID | None]
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    approved_by: Mapped[str | None] = mapped_column(String(80))
    approved_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(80))
    cancelled_at: Mapped[datetime | None]
