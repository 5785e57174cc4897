"""The donation register's lists: donations received at the stores the caller sees."""

import uuid
from typing import Any

from sqlalchemy import select

from services.logistics.models import Receipt, StockSource
from services.logistics.stock.repository import in_stores_seen
from shared.db import AnySelect
from shared.pagination import fetch_page
from shared.uow import UnitOfWork


def _donations(uow: UnitOfWork, *, holder_id: uuid.UUID | None, donor: str | None) -> AnySelect:
    query = select(Receipt).where(
        Receipt.source == StockSource.donation.value, in_stores_seen(uow, Receipt.compound_id)
    )
    if holder_id is not None:
        query = query.where(Receipt.holder_id == holder_id)
    if donor:
        query = query.where(Receipt.donor == donor)
    return query


async def donations_page(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID | None,
    donor: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    query = _donations(uow, holder_id=holder_id, donor=donor)
    return await fetch_page(uow.session, query, Receipt.id, cursor=cursor, limit=limit)


async def donations_to_export(
    uow: UnitOfWork, *, holder_id: uuid.UUID | None, donor: str | None, limit: int
) -> list[Receipt]:
    """The register to export, oldest first, at most ``limit`` donations."""
    query = _donations(uow, holder_id=holder_id, donor=donor)
    return list(await uow.session.scalars(query.order_by(Receipt.id).limit(limit)))
