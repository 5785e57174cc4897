"""Queries over residents: search, zone levels and counts, built on the scoped session."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, select

from services.registry.models import (
    TAG_BITS,
    Household,
    Resident,
    ResidentMove,
    Tag,
    Unit,
    Zone,
    ZoneLevel,
    tags_to_mask,
)
from shared.db import AnySelect, table_of
from shared.directory import zones
from shared.pagination import keyset, where_given
from shared.uow import UnitOfWork


async def has_units(uow: UnitOfWork, building_id: uuid.UUID) -> bool:
    """Whether the building is divided into units (stairwells, entrances)."""
    query = select(Unit.id).where(Unit.building_id == building_id).limit(1)
    return await uow.session.scalar(query) is not None


def zone_level() -> ColumnElement[Any]:
    """A resident's zone: their unit's own zone wins over their building's."""
    return zone_level_of(building_id=Resident.building_id, unit_id=Resident.unit_id)


def zone_level_of(*, building_id: Any, unit_id: Any) -> ColumnElement[Any]:
    """The zone of a place: the unit's own zone wins over its building's."""
    return zones.zone_level_of(table_of(Zone), building_id=building_id, unit_id=unit_id)


@dataclass(frozen=True)
class ResidentFilter:
    name: str | None = None
    phone: str | None = None
    document: str | None = None
    compound_id: uuid.UUID | None = None
    building_id: uuid.UUID | None = None
    unit_id: uuid.UUID | None = None
    household_id: uuid.UUID | None = None
    tags: tuple[Tag, ...] = ()
    zone: ZoneLevel | None = None

    def apply(self, query: AnySelect) -> AnySelect:
        if self.name:
            query = query.where(Resident.name.contains(self.name, autoescape=True))
        if self.phone:
            query = query.where(Resident.phone.contains(self.phone, autoescape=True))
        if self.document:
            document = self.document.upper()
            query = query.where(Resident.document_number.contains(document, autoescape=True))
        for column, value in (
            (Resident.compound_id, self.compound_id),
            (Resident.building_id, self.building_id),
            (Resident.unit_id, self.unit_id),
            (Resident.household_id, self.household_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.tags:
            mask = tags_to_mask(self.tags)
            query = query.where(Resident.tags.op("&")(mask) == mask)
        if self.zone is not None:
            query = query.where(zone_level() == self.zone.value)
        return query


def search(filters: ResidentFilter) -> AnySelect:
    return filters.apply(select(Resident, zone_level().label("zone")))


async def households_page(
    uow: UnitOfWork,
    *,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    unit_id: uuid.UUID | None,
    cursor: Any,
    limit: int,
) -> list[Household]:
    """A page of households (one more than ``limit``: the next page's cursor)."""
    query = where_given(
        select(Household),
        (Household.compound_id, compound_id),
        (Household.building_id, building_id),
        (Household.unit_id, unit_id),
    )
    return list(await uow.session.scalars(keyset(query, Household.id, cursor=cursor, limit=limit)))


async def residents_page(
    uow: UnitOfWork, filters: ResidentFilter, *, cursor: Any, limit: int
) -> list[tuple[Resident, str | None]]:
    """A page of residents found, each with its zone level (one more than ``limit``)."""
    query = keyset(search(filters), Resident.id, cursor=cursor, limit=limit)
    return [(r[0], r[1]) for r in (await uow.session.execute(query)).all()]


async def moves_of(uow: UnitOfWork, resident_id: uuid.UUID) -> list[ResidentMove]:
    query = (
        select(ResidentMove)
        .where(ResidentMove.resident_id == resident_id)
        .order_by(ResidentMove.moved_at)
    )
    return list((await uow.session.scalars(query)).all())


async def zone_of(uow: UnitOfWork, resident_id: uuid.UUID) -> str | None:
    """The resident's zone level now (their unit's, else their building's)."""
    zone: str | None = await uow.session.scalar(
        select(zone_level()).where(Resident.id == resident_id)
    )
    return zone


GROUPS = {
    "compound": (Resident.compound_id,),
    "building": (Resident.compound_id, Resident.building_id),
    "unit": (Resident.compound_id, Resident.building_id, Resident.unit_id),
}


def counts(filters: ResidentFilter, *, group_by: str) -> AnySelect:
    keys = GROUPS[group_by]
    per_tag = [
        func.sum(case((Resident.tags.op("&")(bit) != 0, 1), else_=0)).label(tag)
        for tag, bit in TAG_BITS.items()
    ]
    query = select(*keys, func.count().label("residents"), *per_tag).select_from(Resident)
    return filters.apply(query).group_by(*keys).order_by(*keys)


async def count_rows(uow: UnitOfWork, filters: ResidentFilter, *, group_by: str) -> list[Any]:
    return list((await uow.session.execute(counts(filters, group_by=group_by))).all())
