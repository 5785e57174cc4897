"""Transfers' lists."""

import uuid
from typing import Any

from sqlalchemy import select

from services.logistics.models import Transfer
from services.logistics.stock.repository import READ
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


async def transfers_page(
    uow: UnitOfWork,
    *,
    to_holder_id: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    READ.check_role(uow)
    query = where_given(
        select(Transfer), (Transfer.to_holder_id, to_holder_id), (Transfer.status, status)
    )
    return await fetch_page(uow.session, query, Transfer.id, cursor=cursor, limit=limit)
