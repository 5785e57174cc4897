"""The recurring requests' lists."""

import uuid
from typing import Any

from sqlalchemy import select

from services.logistics.models import Recurrence
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


async def recurrences_page(
    uow: UnitOfWork, *, resident_id: uuid.UUID | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = where_given(select(Recurrence), (Recurrence.resident_id, resident_id))
    return await fetch_page(uow.session, query, Recurrence.id, cursor=cursor, limit=limit)
