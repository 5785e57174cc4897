"""Cursor pagination: stable under inserts, cheap on large tables (keyset on the id, which
is time-ordered)."""

import base64
import uuid
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import AnySelect
from shared.problems import Invalid

MAX_LIMIT = 500
T = TypeVar("T")

# The query parameters of every list endpoint.
Cursor = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9_-]+$",
        max_length=64,
        description="`next_cursor` of the previous page",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise Invalid(
            "cursor is not one this API gave out", errors=[{"field": "cursor", "message": str(exc)}]
        ) from exc


def where_given(query: AnySelect, *filters: tuple[Any, object]) -> AnySelect:
    """``column == value`` for each optional filter of a list that the caller gave."""
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    return query


def keyset(query: AnySelect, id_column: Any, *, cursor: str | None, limit: int) -> AnySelect:
    """Order by id and start after the cursor; fetch one more row to know if a next page exists."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(
            f"limit must be between 1 and {MAX_LIMIT}",
            errors=[{"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"}],
        )
    if cursor:
        query = query.where(id_column > decode_cursor(cursor))
    return query.order_by(id_column).limit(limit + 1)


def next_cursor(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Trim the look-ahead row and return the cursor of the next page, if any."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(page[-1].id)


async def fetch_page(
    session: AsyncSession, query: AnySelect, id_column: Any, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """One cursor page of a list's rows, and the cursor of the next."""
    rows = list(await session.scalars(keyset(query, id_column, cursor=cursor, limit=limit)))
    return next_cursor(rows, limit)
