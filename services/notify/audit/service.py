"""The audit of what was sent to whom, in clear; the endpoint's presenter masks phones."""

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from services.notify.audit import schemas
from services.notify.models import Broadcast, Message
from shared.uow import UnitOfWork


async def caused_by(uow: UnitOfWork, messages: Sequence[Message]) -> dict[uuid.UUID, str]:
    """The operator behind each broadcast among the messages."""
    ids = {m.broadcast_id for m in messages if m.broadcast_id is not None}
    if not ids:
        return {}
    query = select(Broadcast.id, Broadcast.created_by).where(Broadcast.id.in_(ids))
    return {row.id: row.created_by for row in (await uow.session.execute(query)).all()}


def sent(message: Message, operators: dict[uuid.UUID, str]) -> schemas.SentMessage:
    by = None
    if message.broadcast_id is not None:
        by = operators.get(message.broadcast_id)
    elif message.cause_kind == "event":
        by = f"event {message.cause_id}"
    return schemas.SentMessage(
        id=message.id,
        recipient_kind=message.recipient_kind,
        recipient_id=message.recipient_id,
        phone=message.phone,
        language=message.language,
        template_key=message.template_key,
        template_version=message.template_version,
        text=message.text,
        segments=message.segments,
        priority=message.priority,
        state=message.state,
        gateway=message.gateway,
        provider_message_id=message.provider_message_id,
        error=message.error,
        cause_kind=message.cause_kind,
        cause_id=message.cause_id,
        broadcast_id=message.broadcast_id,
        caused_by=by,
        attempts=message.attempts,
        send_at=message.send_at,
        valid_until=message.valid_until,
        created_at=message.created_at,
        sent_at=message.sent_at,
        delivered_at=message.delivered_at,
    )


async def counts(uow: UnitOfWork, *, states: Sequence[str]) -> list[schemas.MessageCounts]:
    """Messages per compound and state in one grouped query, only the states asked for (the
    queue's and the failures' few rows, not the delivered many); scope by the session hook."""
    query = (
        select(Message.compound_id, Message.state, func.count())
        .where(Message.state.in_(states))
        .group_by(Message.compound_id, Message.state)
    )
    found: dict[uuid.UUID | None, dict[str, int]] = {}
    for compound_id, state, n in (await uow.session.execute(query)).all():
        found.setdefault(compound_id, dict.fromkeys(states, 0))[state] = int(n)
    ordered = sorted(found.items(), key=lambda item: str(item[0] or ""))
    return [schemas.MessageCounts(compound_id=c, states=s) for c, s in ordered]
