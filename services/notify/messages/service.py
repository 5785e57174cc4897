"""Messages: the one way a message is created (:func:`enqueue`, idempotent by key), and what
a broadcast asks of its messages (cancel what is not yet handed to a gateway, count by
state). The dispatcher (``services/notify/delivery``) moves them through their states."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update

from services.notify.models import (
    PRIORITY_RANK,
    CauseKind,
    Message,
    MessageState,
    Priority,
    RecipientKind,
)
from shared.bulk import bulk_insert_new
from shared.db import table_of
from shared.ids import new_ids
from shared.uow import UnitOfWork

# States a cancellation still stops: nothing of these was handed to a gateway.
NOT_HANDED = (MessageState.queued.value, MessageState.deferred.value)
# Where enqueue tells the dispatchers (every replica) that messages are waiting.
WAKEUP = "cordon:notify:enqueued"
# Rows per statement: bounded memory, and SQLite's parameter limit on the fallback path.
CHUNK = 20_000


def message_key(
    *,
    cause_kind: str,
    cause_id: uuid.UUID,
    recipient_kind: str,
    recipient_id: uuid.UUID,
    template_key: str,
) -> str:
    """The idempotency key: one message per cause, recipient and template, ever."""
    return f"{cause_kind}:{cause_id}:{recipient_kind}:{recipient_id}:{template_key}"


@dataclass(frozen=True, kw_only=True)
class NewMessage:
    """A message as its cause knows it: who, what text, how urgent, from when until when."""

    cause_kind: CauseKind
    cause_id: uuid.UUID
    recipient_kind: RecipientKind
    recipient_id: uuid.UUID
    phone: str
    language: str
    template_key: str
    template_version: int
    text: str
    segments: int
    priority: Priority
    town_id: uuid.UUID
    committee_id: uuid.UUID | None = None
    compound_id: uuid.UUID | None = None
    building_id: uuid.UUID | None = None
    broadcast_id: uuid.UUID | None = None
    # None: now.
    send_at: datetime | None = None
    # None: no end; past it an unsent message expires instead of being sent.
    valid_until: datetime | None = None

    @property
    def key(self) -> str:
        return message_key(
            cause_kind=self.cause_kind,
            cause_id=self.cause_id,
            recipient_kind=self.recipient_kind,
            recipient_id=self.recipient_id,
            template_key=self.template_key,
        )


async def enqueue(
    uow: UnitOfWork, *, messages: Sequence[NewMessage], now: datetime | None = None
) -> int:
    """Queue the messages whose key is new, in the unit of work's transaction; return how
    many were new. A key seen before (a redelivered event, a retried request, a second
    replica) is skipped, whatever state its message is in."""
    moment = now or datetime.now(UTC)
    table = table_of(Message)
    new = 0
    for start in range(0, len(messages), CHUNK):
        chunk = messages[start : start + CHUNK]
        rows = [_row(m, id=i, now=moment) for m, i in zip(chunk, new_ids(len(chunk)), strict=True)]
        new += await bulk_insert_new(uow.session, table, rows, key="key")
    if new:
        uow.after_commit(lambda: uow.kv.signal(WAKEUP))
    return new


def _row(message: NewMessage, *, id: uuid.UUID, now: datetime) -> dict[str, object]:
    send_at = message.send_at or now
    return {
        "id": id,
        "key": message.key,
        "cause_kind": message.cause_kind.value,
        "cause_id": message.cause_id,
        "broadcast_id": message.broadcast_id,
        "recipient_kind": message.recipient_kind.value,
        "recipient_id": message.recipient_id,
        "phone": message.phone,
        "language": message.language,
        "template_key": message.template_key,
        "template_version": message.template_version,
        "text": message.text,
        "segments": message.segments,
        "priority": message.priority.value,
        "rank": PRIORITY_RANK[message.priority],
        "state": MessageState.queued.value,
        "send_at": send_at,
        "valid_until": message.valid_until,
        "attempts": 0,
        "next_attempt_at": send_at,
        "lease_until": None,
        "batch_id": None,
        "gateway": None,
        "provider_message_id": None,
        "error": None,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
        "delivered_at": None,
        "town_id": message.town_id,
        "committee_id": message.committee_id,
        "compound_id": message.compound_id,
        "building_id": message.building_id,
    }


async def cancel_broadcast(
    uow: UnitOfWork, *, broadcast_id: uuid.UUID, now: datetime | None = None
) -> int:
    """Cancel the broadcast's messages not yet handed to a gateway; return how many. One
    already claimed (``sending``) goes out: the dispatcher's claim is the line."""
    moment = now or datetime.now(UTC)
    result = await uow.session.execute(
        update(Message)
        .where(Message.broadcast_id == broadcast_id, Message.state.in_(NOT_HANDED))
        .values(state=MessageState.cancelled.value, updated_at=moment, error="cancelled")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def broadcasts_progress(
    uow: UnitOfWork, *, broadcast_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """How many of each broadcast's messages are in each state (every state, zeros too),
    for a page of broadcasts in one query."""
    counts = {b: dict.fromkeys((s.value for s in MessageState), 0) for b in broadcast_ids}
    rows = await uow.session.execute(
        select(Message.broadcast_id, Message.state, func.count())
        .where(Message.broadcast_id.in_(list(broadcast_ids)))
        .group_by(Message.broadcast_id, Message.state)
    )
    for broadcast_id, state, count in rows.all():
        if broadcast_id is not None:
            counts[broadcast_id][state] = int(count)
    return counts
