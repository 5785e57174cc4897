"""The audit of what was sent to whom, in clear; the endpoint's presenter masks phones."""

import uuid
from collections.abc import Sequence

from services.notify.audit import repository, schemas
from services.notify.models import Message
from services.notify.rules import service as rules
from shared.uow import UnitOfWork


async def caused_by(uow: UnitOfWork, messages: Sequence[Message]) -> dict[uuid.UUID, str]:
    """The operator behind each broadcast among the messages."""
    ids = {m.broadcast_id for m in messages if m.broadcast_id is not None}
    if not ids:
        return {}
    return await repository.creators(uow, broadcast_ids=ids)


async def shown(uow: UnitOfWork, messages: Sequence[Message]) -> list[schemas.SentMessage]:
    """The messages as the audit answers them, in clear, each saying whether it is health
    data (the presenter masks by it)."""
    operators = await caused_by(uow, messages)
    health = await rules.health_templates(uow, town_ids={m.town_id for m in messages})
    return [sent(m, operators, health=(m.town_id, m.template_key) in health) for m in messages]


def sent(message: Message, operators: dict[uuid.UUID, str], *, health: bool) -> schemas.SentMessage:
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
        health_data=health,
    )


async def counts(uow: UnitOfWork, *, states: Sequence[str]) -> list[schemas.MessageCounts]:
    """Messages per compound and state, only the states asked for (the queue's and the
    failures' few rows, not the delivered many)."""
    found: dict[uuid.UUID | None, dict[str, int]] = {}
    for compound_id, state, n in await repository.counts_by_compound(uow, states=states):
        found.setdefault(compound_id, dict.fromkeys(states, 0))[state] = n
    ordered = sorted(found.items(), key=lambda item: str(item[0] or ""))
    return [schemas.MessageCounts(compound_id=c, states=s) for c, s in ordered]
