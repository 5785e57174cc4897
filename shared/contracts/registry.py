"""Events the registry publishes."""

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import Event

ZoneLevelName = Literal["sealed", "controlled", "precaution"]
PlaceKind = Literal["town", "committee", "compound", "building", "unit", "grid"]


class ResidentRecord(BaseModel):
    """What other services keep about a resident: where they live, how to reach them, and
    the tags that decide door-to-door care."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    household_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    name: str
    document_number: str
    phone: str | None
    birth_date: date | None
    tags: list[str]


class PlaceRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: PlaceKind
    id: uuid.UUID
    town_id: uuid.UUID
    committee_id: uuid.UUID | None = None
    compound_id: uuid.UUID | None = None
    building_id: uuid.UUID | None = None
    code: str
    name: str
    # Grids only: the grid a microgrid belongs to, and the buildings it covers (grids may
    # span compounds, so a grid's compound_id is empty).
    parent_id: uuid.UUID | None = None
    building_ids: list[uuid.UUID] = []


class ResidentRegistered(Event):
    """A resident was registered one at a time (by staff, through the API)."""

    type = "registry.resident.registered"
    personal_data = True
    resident: ResidentRecord


class ResidentUpdated(Event):
    """A resident's details or household changed (``moved`` when the household did)."""

    type = "registry.resident.updated"
    personal_data = True
    resident: ResidentRecord
    moved: bool = False


class ResidentsImported(Event):
    """One batch of residents inserted or changed by a ledger import (one event per batch,
    never one per row)."""

    type = "registry.residents.imported"
    personal_data = True
    import_id: uuid.UUID
    batch: int
    residents: list[ResidentRecord]


class PlaceRegistered(Event):
    """A town, committee, compound, building, unit or grid was created (a grid is published
    again whenever its buildings change)."""

    type = "registry.place.registered"
    place: PlaceRecord


class ZoneChanged(Event):
    """A building or unit changed zone level (``to_level`` empty when its zone was lifted)."""

    type = "registry.zone.changed"
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    from_level: ZoneLevelName | None = Field(
        description="The level its residents had: a unit's own, or its building's when "
        "``from_inherited``"
    )
    to_level: ZoneLevelName | None
    reason: str
    set_by: str
    at: datetime
    from_inherited: bool = Field(
        default=False, description="The unit had no zone of its own: it had its building's"
    )


class CompoundStatusChanged(Event):
    """A compound was closed, reopened, or declared epidemic-free."""

    type = "registry.compound.status_changed"
    town_id: uuid.UUID
    compound_id: uuid.UUID
    from_status: Literal["normal", "closed", "epidemic_free"]
    to_status: Literal["normal", "closed", "epidemic_free"]
    reason: str
    at: datetime
    override_reason: str | None = Field(
        default=None,
        description="Why a town operator declared it epidemic-free although it was not ready",
    )
    overridden: list[str] = Field(
        default_factory=list,
        description="What made it not ready (never found eligible, a sealed area), overridden",
    )


class SnapshotStarted(Event):
    """A re-sync began: consumers may rebuild their projections from the batches that follow."""

    type = "registry.snapshot.started"
    resync_id: uuid.UUID


class PlacesSnapshot(Event):
    """One batch of every place, republished by a re-sync."""

    type = "registry.places.snapshot"
    resync_id: uuid.UUID
    batch: int
    places: list[PlaceRecord]


class ResidentsSnapshot(Event):
    """One batch of every resident, republished by a re-sync."""

    type = "registry.residents.snapshot"
    personal_data = True
    resync_id: uuid.UUID
    batch: int
    residents: list[ResidentRecord]


class ZonesSnapshot(Event):
    """Every current zone, republished by a re-sync."""

    type = "registry.zones.snapshot"
    resync_id: uuid.UUID
    batch: int
    zones: list[ZoneChanged]


class SnapshotCompleted(Event):
    """A re-sync ended; ``batches`` says how many snapshot batches were sent."""

    type = "registry.snapshot.completed"
    resync_id: uuid.UUID
    batches: int
    residents: int
    places: int
    zones: int
