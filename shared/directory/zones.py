"""The zone an area is in, one rule for every service that reads zones (the registry on its
own table, the others on their directory): a unit's own zone wins over its building's. A unit
set below its building's level was released from that zone by an operator's explicit
downgrade; a unit without a zone of its own, or whose zone was lifted, is in its building's.

Two forms of the same rule: :func:`zone_level_of`, a lookup correlated to the row at hand
(a few rows, or a condition), and :func:`join_zone_levels`, outer joins to the building and
unit zones for a statement over a whole town (each derived table hashed once)."""

from typing import Any

from sqlalchemy import ColumnElement, FromClause, Join, Table, select
from sqlalchemy.sql.functions import coalesce


def zone_level_of(zones: Table, *, building_id: Any, unit_id: Any) -> ColumnElement[Any]:
    """The level of the area at ``building_id`` and ``unit_id`` (columns of the enclosing
    query); empty when neither the unit nor its building is zoned."""
    unit_zone = (
        select(zones.c.level)
        .where(zones.c.building_id == building_id, zones.c.unit_id == unit_id)
        .scalar_subquery()
    )
    building_zone = (
        select(zones.c.level)
        .where(zones.c.building_id == building_id, zones.c.unit_id.is_(None))
        .scalar_subquery()
    )
    return coalesce(unit_zone, building_zone)


def zoned_apart(zones: Table, *, building_id: Any, unit_id: Any) -> ColumnElement[bool]:
    """Whether the unit at ``building_id`` and ``unit_id`` has a zone of its own: then a
    change of its building's zone is no change of its level."""
    return (
        select(zones.c.unit_id)
        .where(
            zones.c.building_id == building_id,
            zones.c.unit_id == unit_id,
            zones.c.level.is_not(None),
        )
        .exists()
    )


def join_zone_levels(
    source: FromClause, zones: Table, *, building_id: Any, unit_id: Any
) -> tuple[Join, ColumnElement[Any]]:
    """``source`` outer-joined to its building's and its unit's zones, and the level. The
    derived tables are selects of their own, so a scoped session filters them inside and
    never turns an outer join into an inner one."""
    buildings = (
        select(zones.c.building_id, zones.c.level)
        .where(zones.c.unit_id.is_(None), zones.c.level.is_not(None))
        .subquery("zone_of_building")
    )
    units = (
        select(zones.c.unit_id, zones.c.level)
        .where(zones.c.unit_id.is_not(None), zones.c.level.is_not(None))
        .subquery("zone_of_unit")
    )
    joined = source.outerjoin(buildings, buildings.c.building_id == building_id).outerjoin(
        units, units.c.unit_id == unit_id
    )
    return joined, coalesce(units.c.level, buildings.c.level)
