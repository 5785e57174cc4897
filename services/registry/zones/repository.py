"""Queries over zones as residents live in them: a unit without a zone of its own has its
building's, so a sealed building's units count as sealed."""

import uuid
from typing import Any, Literal

from sqlalchemy import func, literal, select
from sqlalchemy.types import Uuid

from services.registry.models import Building, Resident, Unit
from services.registry.residents.repository import zone_level
from shared.db import AnySelect

PopulationGrouping = Literal["compound", "building", "unit"]


def population(*, by: PopulationGrouping, compound_id: uuid.UUID | None) -> AnySelect:
    """Households and people per place and effective zone level (empty: no zone)."""
    none: Any = literal(None, Uuid)
    building_id = none if by == "compound" else Resident.building_id
    unit_id = Resident.unit_id if by == "unit" else none
    lived: Any = select(
        Resident.compound_id.label("compound_id"),
        building_id.label("building_id"),
        unit_id.label("unit_id"),
        Resident.household_id,
        zone_level().label("level"),
    )
    if compound_id is not None:
        lived = lived.where(Resident.compound_id == compound_id)
    lived = lived.subquery()
    keys = (lived.c.compound_id, lived.c.building_id, lived.c.unit_id, lived.c.level)
    return (
        select(
            *keys,
            Building.code.label("building_code"),
            Unit.code.label("unit_code"),
            func.count(func.distinct(lived.c.household_id)).label("households"),
            func.count().label("people"),
        )
        .outerjoin(Building, Building.id == lived.c.building_id)
        .outerjoin(Unit, Unit.id == lived.c.unit_id)
        .group_by(*keys, Building.code, Unit.code)
        .order_by(lived.c.compound_id, Building.code, Unit.code, lived.c.level)
    )
