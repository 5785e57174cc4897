"""Antigen self-tests' reads that the endpoints name."""

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select

from services.testing.models import AntigenReport, DirectoryResident
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


async def reports_page(
    uow: UnitOfWork,
    *,
    day: date | None,
    building_id: uuid.UUID | None,
    compound_id: uuid.UUID | None,
    result: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    query = where_given(
        select(AntigenReport),
        (AntigenReport.day, day),
        (AntigenReport.building_id, building_id),
        (AntigenReport.compound_id, compound_id),
        (AntigenReport.result, result),
    )
    return await fetch_page(uow.session, query, AntigenReport.id, cursor=cursor, limit=limit)


async def missing_page(
    uow: UnitOfWork, *, building_id: uuid.UUID, day: date, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """A page of the building's residents without a report that day (directory rows)."""
    reported = select(AntigenReport.resident_id).where(
        AntigenReport.day == day, AntigenReport.building_id == building_id
    )
    query = select(DirectoryResident).where(
        DirectoryResident.building_id == building_id, DirectoryResident.id.not_in(reported)
    )
    return await fetch_page(uow.session, query, DirectoryResident.id, cursor=cursor, limit=limit)
