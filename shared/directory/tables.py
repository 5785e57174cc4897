"""The directory's tables, added to a service's metadata by :func:`define_directory` (as the
kernel's are by ``define_kernel_tables``): places (grids with their buildings), households,
residents with tags and phones, zones, staff and volunteers, assignments, and the
bookkeeping that keeps them in order (the re-syncs seen, how far the stream was applied).

Every entity row keeps ``position``: the stream position of the event that last wrote it.
A zone that was lifted and an assignment that ended stay as rows (``level`` or ``ended_at``
say so), so an older event arriving later finds something newer and is dropped."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Index,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from shared.auth import Scoped
from shared.db import table_of

# Tags that send staff to the door (samplers, deliveries) instead of the resident out.
DOOR_TO_DOOR_TAGS = frozenset({"bedridden", "disabled"})


class Positioned(Scoped):
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Stream position of the event that last wrote this row (0: written before positions).
    position: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class PlaceRow(Positioned):
    """A place as the registry published it (town, committee, compound, building, unit, grid)."""

    kind: Mapped[str] = mapped_column(String(10), index=True)
    committee_id: Mapped[uuid.UUID | None]
    parent_id: Mapped[uuid.UUID | None]
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))


class GridBuildingRow:
    """Which buildings a grid covers (grids may span compounds); written with the grid."""

    grid_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    building_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)


class HouseholdRow(Positioned):
    unit_id: Mapped[uuid.UUID | None]
    code: Mapped[str] = mapped_column(String(40))
    room: Mapped[str | None] = mapped_column(String(40))


class ResidentRow(Positioned):
    household_id: Mapped[uuid.UUID] = mapped_column(index=True)
    unit_id: Mapped[uuid.UUID | None]
    name: Mapped[str] = mapped_column(String(60))
    document_number: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str | None] = mapped_column(String(20))
    birth_date: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    door_to_door: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(5), default="zh-CN", server_default="zh-CN")
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_at: Mapped[datetime]

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        name = getattr(cls, "__tablename__", "directory_residents")
        return (Index(f"ix_{name}_building_unit", "building_id", "unit_id"),)


class ZoneRow(Positioned):
    """The zone of a building (unit empty) or unit; ``id`` is that building's or unit's id.
    ``level`` is empty once the zone was lifted."""

    unit_id: Mapped[uuid.UUID | None]
    level: Mapped[str | None] = mapped_column(String(12))
    since: Mapped[datetime]

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("building_id", "unit_id"),)


class PersonRow(Positioned):
    """A staff member or volunteer."""

    kind: Mapped[str] = mapped_column(String(10))
    committee_id: Mapped[uuid.UUID | None]
    name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(80), default="")
    skills: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    availability: Mapped[str] = mapped_column(String(200), default="", server_default="")


class AssignmentRow(Positioned):
    person_kind: Mapped[str] = mapped_column(String(10))
    person_id: Mapped[uuid.UUID] = mapped_column(index=True)
    grid_id: Mapped[uuid.UUID | None]
    duty: Mapped[str] = mapped_column(String(80), default="")
    assigned_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class SnapshotRow:
    """A re-sync seen, per town it covers: nothing of that town older than ``position``
    (its start) is applied any more."""

    resync_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    town_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, index=True)
    position: Mapped[int] = mapped_column(BigInteger)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)


class StreamRow:
    """How far the producer's stream has been applied: the highest position, and when the
    event at it happened."""

    stream: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    event_at: Mapped[datetime]
    applied_at: Mapped[datetime]


@dataclass(frozen=True)
class DirectoryModels:
    """A service's directory: its mapped classes (for ORM queries, scope-filtered) and tables."""

    Place: type[PlaceRow]
    GridBuilding: type[GridBuildingRow]
    Household: type[HouseholdRow]
    Resident: type[ResidentRow]
    Zone: type[ZoneRow]
    Person: type[PersonRow]
    Assignment: type[AssignmentRow]
    Snapshot: type[SnapshotRow]
    Stream: type[StreamRow]

    def table(self, model: type[Any]) -> Table:
        return table_of(model)

    @property
    def entities(self) -> tuple[type[Positioned], ...]:
        """The tables a re-sync replaces, in the order their rows are dropped."""
        return (self.Assignment, self.Person, self.Zone, self.Resident, self.Household, self.Place)


def _mapped(base: type[DeclarativeBase], row: type[Any], name: str, table: str) -> Any:
    return type(name, (row, base), {"__tablename__": table, "__module__": base.__module__})


def define_directory(base: type[DeclarativeBase]) -> DirectoryModels:
    """Map the directory's tables (``directory_*``) on a service's declarative base."""
    return DirectoryModels(
        Place=_mapped(base, PlaceRow, "DirectoryPlace", "directory_places"),
        GridBuilding=_mapped(
            base, GridBuildingRow, "DirectoryGridBuilding", "directory_grid_buildings"
        ),
        Household=_mapped(base, HouseholdRow, "DirectoryHousehold", "directory_households"),
        Resident=_mapped(base, ResidentRow, "DirectoryResident", "directory_residents"),
        Zone=_mapped(base, ZoneRow, "DirectoryZone", "directory_zones"),
        Person=_mapped(base, PersonRow, "DirectoryPerson", "directory_people"),
        Assignment=_mapped(base, AssignmentRow, "DirectoryAssignment", "directory_assignments"),
        Snapshot=_mapped(base, SnapshotRow, "DirectorySnapshot", "directory_snapshots"),
        Stream=_mapped(base, StreamRow, "DirectoryStream", "directory_streams"),
    )
