"""Queries over zones as residents live in them: a unit without a zone of its own has its
building's, so a sealed building's units count as sealed."""

import uuid
from typing import Any, Literal

from sqlalchemy import BigInteger, cast, func, literal, select
from sqlalchemy.types import Uuid

from services.registry.models import Building, Resident, Unit
from services.registry.residents.repository import zone_level_of
from shared.db import AnySelect

PopulationGrouping = Literal["compound", "building", "unit"]


def population(*, by: PopulationGrouping, compound_id: uuid.UUID | None) -> AnySelect:
    """Households and people per place and effective zone level (empty: no zone).

    Residents are counted per unit first and the zone looked up once per unit, not once
    per resident: a household lives in one unit, so its distinct count per unit adds up."""
    none: Any = literal(None, Uuid)
    places = (Resident.compound_id, Resident.building_id, Resident.unit_id)
    counted: Any = select(
        *places,
        func.count(func.distinct(Resident.household_id)).label("households"),
        func.count().label("people"),
    ).group_by(*places)
    if compound_id is not None:
        counted = counted.where(Resident.compound_id == compound_id)
    counted = counted.subquery()
    lived = select(
        counted.c.compound_id,
        (none if by == "compound" else counted.c.building_id).label("building_id"),
        (counted.c.unit_id if by == "unit" else none).label("unit_id"),
        zone_level_of(building_id=counted.c.building_id, unit_id=counted.c.unit_id).label("level"),
        counted.c.households,
        counted.c.people,
    ).subquery()
    keys = (lived.c.compound_id, lived.c.building_id, lived.c.unit_id, lived.c.level)
    return (
        select(
            *keys,
            Building.code.label("building_code"),
            Unit.code.label("unit_code"),
            cast(func.sum(lived.c.households), BigInteger).label("households"),
            cast(func.sum(lived.c.people), BigInteger).label("people"),
        )
        .outerjoin(Building, Building.id == lived.c.building_id)
        .outerjoin(Unit, Unit.id == lived.c.unit_id)
        .group_by(*keys, Building.code, Unit.code)
        .order_by(lived.c.compound_id, Building.code, Unit.code, lived.c.level)
    )
