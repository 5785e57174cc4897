"""The recurring requests' lists."""

import uuid
from datetime import date
from typing import Any

from sqlalchemy import or_, select

from services.logistics.models import Recurrence
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


async def recurrences_page(
    uow: UnitOfWork, *, resident_id: uuid.UUID | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = where_given(select(Recurrence), (Recurrence.resident_id, resident_id))
    return await fetch_page(uow.session, query, Recurrence.id, cursor=cursor, limit=limit)


async def overlapping_series(
    uow: UnitOfWork,
    *,
    resident_id: uuid.UUID,
    kind: str,
    weekdays_key: str,
    at_time: str,
    starts_on: date,
    ends_on: date | None,
) -> Recurrence | None:
    """The resident's active recurring request of this kind on these days at this time
    whose period meets ``starts_on`` to ``ends_on`` (open-ended: for ever)."""
    query = select(Recurrence).where(
        Recurrence.resident_id == resident_id,
        Recurrence.kind == kind,
        Recurrence.weekdays_key == weekdays_key,
        Recurrence.at_time == at_time,
        Recurrence.active.is_(True),
        or_(Recurrence.ends_on.is_(None), Recurrence.ends_on >= starts_on),
    )
    if ends_on is not None:
        query = query.where(Recurrence.starts_on <= ends_on)
    return (await uow.session.scalars(query.order_by(Recurrence.starts_on).limit(1))).first()
