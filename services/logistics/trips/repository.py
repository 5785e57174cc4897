"""The medicine runs' lists: cards out, trips."""

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select

from services.logistics.models import HelpRequest, Trip
from services.logistics.requests.repository import page_visible, visible_to
from shared.pagination import fetch_page
from shared.uow import UnitOfWork


async def cards_page(
    uow: UnitOfWork, *, overdue: bool | None, now: datetime, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """Medicine runs whose card is out (``overdue``: past its return time, or not)."""
    query = select(HelpRequest).where(HelpRequest.card_status.in_(("collected", "at_hospital")))
    if overdue is not None:
        late = HelpRequest.card_due_at < now
        query = query.where(late if overdue else ~late)
    return await page_visible(uow, query, cursor=cursor, limit=limit)


async def trips_page(
    uow: UnitOfWork, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = select(Trip)
    if (narrow := only_theirs(uow)) is not None:
        query = query.where(narrow)
    return await fetch_page(uow.session, query, Trip.id, cursor=cursor, limit=limit)


def only_theirs(uow: UnitOfWork) -> ColumnElement[bool] | None:
    """Beyond the scope: a volunteer sees only the trips carrying one of their own errands
    (a trip's other runs are other residents' medicine)."""
    if (narrow := visible_to(uow)) is None:
        return None
    return Trip.id.in_(select(HelpRequest.trip_id).where(narrow))
