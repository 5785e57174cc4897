"""The places' lists, each optionally narrowed to its parent, on the scoped session."""

import uuid
from typing import Any

from sqlalchemy import select

from services.registry.models import Building, Committee, Compound, Grid, Town, Unit
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


async def towns(uow: UnitOfWork) -> list[Town]:
    return list(await uow.session.scalars(select(Town).order_by(Town.code)))


async def committees(uow: UnitOfWork, *, town_id: uuid.UUID | None) -> list[Committee]:
    query = where_given(select(Committee).order_by(Committee.code), (Committee.town_id, town_id))
    return list(await uow.session.scalars(query))


async def compounds(uow: UnitOfWork, *, committee_id: uuid.UUID | None) -> list[Compound]:
    query = where_given(
        select(Compound).order_by(Compound.code), (Compound.committee_id, committee_id)
    )
    return list(await uow.session.scalars(query))


async def buildings_page(
    uow: UnitOfWork, *, compound_id: uuid.UUID | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = where_given(select(Building), (Building.compound_id, compound_id))
    return await fetch_page(uow.session, query, Building.id, cursor=cursor, limit=limit)


async def units_page(
    uow: UnitOfWork, *, building_id: uuid.UUID | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = where_given(select(Unit), (Unit.building_id, building_id))
    return await fetch_page(uow.session, query, Unit.id, cursor=cursor, limit=limit)


async def grids(uow: UnitOfWork, *, compound_id: uuid.UUID | None) -> list[Grid]:
    query = where_given(select(Grid).order_by(Grid.code), (Grid.compound_id, compound_id))
    return list(await uow.session.scalars(query))
