"""Events the registry publishes.

Each is stamped with its position in the registry's stream (the envelope's ``position``);
projections (``shared/directory``) apply a record only when its event is newer than what
they hold, so retries, replays and several relays cannot put an older state back."""

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from shared.events import Contract, Event, Instant

ZoneLevelName = Literal["sealed", "controlled", "precaution"]
PlaceKind = Literal["town", "committee", "compound", "building", "unit", "grid"]


class ResidentRecord(Contract):
    """What other services keep about a resident: where they live, how to reach them, and
    the tags that decide door-to-door care."""

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
    # How to speak to them: zh-CN or en, and whether they decline optional messages.
    language: str = "zh-CN"
    opted_out: bool = False


class PlaceRecord(Contract):
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
    building_ids: list[uuid.UUID] = Field(default_factory=list)


class HouseholdRecord(Contract):
    """A household: a family, not a door (one self-built house may hold several)."""

    id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None
    code: str
    room: str | None = None


PersonKindName = Literal["staff", "volunteer"]


class PersonRecord(Contract):
    """A staff member or volunteer and how to reach them; placed at their town, committee
    (empty for town staff) and compound (empty for committee-wide people)."""

    kind: PersonKindName
    id: uuid.UUID
    town_id: uuid.UUID
    committee_id: uuid.UUID | None
    compound_id: uuid.UUID | None
    name: str
    phone: str | None
    title: str = ""
    # A volunteer's skills and when they are available (empty for staff).
    skills: list[str] = Field(default_factory=list)
    availability: str = ""


class AssignmentRecord(Contract):
    """A person put in charge of a compound, grid or building (``ended_at`` set once the
    assignment has ended)."""

    id: uuid.UUID
    person_kind: PersonKindName
    person_id: uuid.UUID
    town_id: uuid.UUID
    compound_id: uuid.UUID | None
    building_id: uuid.UUID | None
    grid_id: uuid.UUID | None
    duty: str
    assigned_at: Instant
    ended_at: Instant | None = None


class HouseholdRegistered(Event):
    """A household was registered one at a time (by staff, through the API)."""

    type = "registry.household.registered"
    household: HouseholdRecord


class PeopleChanged(Event):
    """Staff members or volunteers were registered or changed (one, or a batch)."""

    type = "registry.people.changed"
    personal_data = True
    people: list[PersonRecord]


class AssignmentsChanged(Event):
    """Assignments were made (one, or a batch) or one ended."""

    type = "registry.assignments.changed"
    assignments: list[AssignmentRecord]


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
    # The households the batch created (their residents follow in ``residents``).
    households: list[HouseholdRecord] = Field(default_factory=list)


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
    at: Instant
    from_inherited: bool = Field(
        default=False, description="The unit had no zone of its own: it had its building's"
    )
    units_apart: list[uuid.UUID] | None = Field(
        default=None,
        description="A building's change: its units with a zone of their own, which keep "
        "their level (a unit's own zone wins; a unit raised with its building is its own "
        "change). Carried so a consumer tells the right residents without waiting for its "
        "copy of the zones. Absent on a unit's change and on events published before it",
    )


class CompoundStatusChanged(Event):
    """A compound was closed, reopened, or declared epidemic-free."""

    type = "registry.compound.status_changed"
    town_id: uuid.UUID
    compound_id: uuid.UUID
    from_status: Literal["normal", "closed", "epidemic_free"]
    to_status: Literal["normal", "closed", "epidemic_free"]
    reason: str
    at: Instant
    override_reason: str | None = Field(
        default=None,
        description="Why a town operator declared it epidemic-free although it was not ready",
    )
    overridden: list[str] = Field(
        default_factory=list,
        description="What made it not ready (never found eligible, a sealed area), overridden",
    )


class SnapshotStarted(Event):
    """A re-sync of these towns began: the batches that follow hold all of their state, and
    once it completes a projection drops what it holds of them that is older than this
    event and was not in the batches (deleted or lifted meanwhile); other towns are left
    alone."""

    type = "registry.snapshot.started"
    resync_id: uuid.UUID
    town_ids: list[uuid.UUID]


class PlacesSnapshot(Event):
    """One batch of the places of the towns a re-sync covers."""

    type = "registry.places.snapshot"
    resync_id: uuid.UUID
    batch: int
    places: list[PlaceRecord]


class ResidentsSnapshot(Event):
    """One batch of the residents of the towns a re-sync covers."""

    type = "registry.residents.snapshot"
    personal_data = True
    resync_id: uuid.UUID
    batch: int
    residents: list[ResidentRecord]


class HouseholdsSnapshot(Event):
    """One batch of the households of the towns a re-sync covers."""

    type = "registry.households.snapshot"
    resync_id: uuid.UUID
    batch: int
    households: list[HouseholdRecord]


class PeopleSnapshot(Event):
    """One batch of the staff and volunteers of the towns a re-sync covers."""

    type = "registry.people.snapshot"
    personal_data = True
    resync_id: uuid.UUID
    batch: int
    people: list[PersonRecord]


class AssignmentsSnapshot(Event):
    """One batch of the current assignments of the towns a re-sync covers."""

    type = "registry.assignments.snapshot"
    resync_id: uuid.UUID
    batch: int
    assignments: list[AssignmentRecord]


class ZonesSnapshot(Event):
    """One batch of the current zones of the towns a re-sync covers."""

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
    households: int = 0
    people: int = 0
    assignments: int = 0
