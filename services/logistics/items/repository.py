"""The catalogue's lists."""

from typing import Any

from sqlalchemy import select

from services.logistics.models import Item, Kit
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


async def items_page(
    uow: UnitOfWork, *, category: str | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = where_given(select(Item), (Item.category, category))
    return await fetch_page(uow.session, query, Item.id, cursor=cursor, limit=limit)


async def kits_page(
    uow: UnitOfWork, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    return await fetch_page(uow.session, select(Kit), Kit.id, cursor=cursor, limit=limit)
