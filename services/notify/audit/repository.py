"""Named queries of the audit: a page of messages, and the operators behind broadcasts."""

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select

from services.notify.models import Broadcast, Message
from shared.authz import own_rows
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


def visible_to(uow: UnitOfWork) -> Any:
    """Beyond the scope: a volunteer reads only the messages sent to them."""
    return own_rows(uow, Message.recipient_id)


def _narrowed(uow: UnitOfWork, query: Any) -> Any:
    narrow = visible_to(uow)
    return query if narrow is None else query.where(narrow)


async def message(uow: UnitOfWork, message_id: uuid.UUID) -> Message:
    """The message if the caller may read it, else a 404."""
    return await uow.get(Message, message_id, what="message", where=visible_to(uow))


async def messages_page(
    uow: UnitOfWork,
    *,
    broadcast_id: uuid.UUID | None,
    cause_id: uuid.UUID | None,
    recipient_id: uuid.UUID | None,
    compound_id: uuid.UUID | None,
    state: str | None,
    template_key: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    query = where_given(
        _narrowed(uow, select(Message)),
        (Message.broadcast_id, broadcast_id),
        (Message.cause_id, cause_id),
        (Message.recipient_id, recipient_id),
        (Message.compound_id, compound_id),
        (Message.state, state),
        (Message.template_key, template_key),
    )
    return await fetch_page(uow.session, query, Message.id, cursor=cursor, limit=limit)


async def creators(uow: UnitOfWork, *, broadcast_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Who created each of these broadcasts."""
    query = select(Broadcast.id, Broadcast.created_by).where(Broadcast.id.in_(broadcast_ids))
    return {row.id: row.created_by for row in (await uow.session.execute(query)).all()}


async def counts_by_compound(
    uow: UnitOfWork, *, states: Sequence[str]
) -> list[tuple[uuid.UUID | None, str, int]]:
    """Messages per compound and state in one grouped query (scope by the session hook)."""
    query = _narrowed(
        uow,
        select(Message.compound_id, Message.state, func.count())
        .where(Message.state.in_(states))
        .group_by(Message.compound_id, Message.state),
    )
    return [(c, str(s), int(n)) for c, s, n in (await uow.session.execute(query)).all()]
