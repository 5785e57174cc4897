"""Tubes' reads that the endpoints name: a round's tubes by page, a tube by its code."""

import uuid
from typing import Any

from sqlalchemy import select

from services.testing.models import Tube
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


async def tubes_page(
    uow: UnitOfWork, *, round_id: uuid.UUID, status: str | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = where_given(select(Tube).where(Tube.round_id == round_id), (Tube.status, status))
    return await fetch_page(uow.session, query, Tube.id, cursor=cursor, limit=limit)


async def tube_by_code(uow: UnitOfWork, code: str) -> Tube | None:
    """The tube of this code, if the caller's scope holds it."""
    return await uow.session.scalar(select(Tube).where(Tube.code == code))
