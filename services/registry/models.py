"""The registry's tables. Every placed row carries town, compound and building ids
(:class:`~shared.auth.Scoped`) so that scope filtering needs no joins."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from shared.auth import Scoped
from shared.db import define_kernel_tables, new_metadata, partial_index, utc_datetime
from shared.ids import new_id


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: utc_datetime(), uuid.UUID: Uuid}


SERVICE = "registry"
kernel = define_kernel_tables(Base.metadata)


class CompoundKind(StrEnum):
    public_housing = "public_housing"
    commercial = "commercial"
    self_built = "self_built"
    villas = "villas"
    mixed = "mixed"


class CompoundStatus(StrEnum):
    normal = "normal"
    closed = "closed"
    epidemic_free = "epidemic_free"


class GateState(StrEnum):
    open = "open"
    closed = "closed"
    guarded = "guarded"


class ZoneLevel(StrEnum):
    sealed = "sealed"
    controlled = "controlled"
    precaution = "precaution"


class SealGranularity(StrEnum):
    unit = "unit"
    building = "building"


class ProposalStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    superseded = "superseded"


class PersonKind(StrEnum):
    staff = "staff"
    volunteer = "volunteer"


class VolunteerKind(StrEnum):
    expert = "expert"
    service = "service"
    resource = "resource"


class TeamKind(StrEnum):
    medical = "medical"
    publicity = "publicity"
    care = "care"
    disinfection = "disinfection"
    sampling = "sampling"
    logistics = "logistics"
    errands = "errands"
    counselling = "counselling"


class Language(StrEnum):
    """The language a resident's messages are written in."""

    zh_cn = "zh-CN"
    en = "en"


class Tag(StrEnum):
    elderly = "elderly"
    living_alone = "living_alone"
    elderly_only_household = "elderly_only_household"
    disabled = "disabled"
    deaf_mute = "deaf_mute"
    pregnant = "pregnant"
    infant = "infant"
    newborn = "newborn"
    dialysis = "dialysis"
    chronic_medication = "chronic_medication"
    bedridden = "bedridden"
    tenant = "tenant"


# Tags are stored as a bit mask: one integer column filters and counts without a join.
TAG_BITS: dict[str, int] = {tag.value: 1 << i for i, tag in enumerate(Tag)}


def tags_to_mask(tags: Any) -> int:
    mask = 0
    for tag in tags:
        mask |= TAG_BITS[str(tag)]
    return mask


def mask_to_tags(mask: int) -> list[str]:
    return [tag for tag, bit in TAG_BITS.items() if mask & bit]


class Town(Scoped, Base):
    __tablename__ = "towns"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    # Whether a confirmed case seals its unit or its whole building.
    seal_granularity: Mapped[str] = mapped_column(String(10), default=SealGranularity.unit.value)
    # Days without a positive before a sealed (then controlled) area is proposed a downgrade.
    downgrade_after_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")


class Committee(Scoped, Base):
    __tablename__ = "committees"
    __table_args__ = (UniqueConstraint("town_id", "code"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))


class Compound(Scoped, Base):
    __tablename__ = "compounds"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    committee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("committees.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=CompoundStatus.normal.value)
    status_reason: Mapped[str] = mapped_column(String(500), default="")
    status_since: Mapped[datetime]
    # Set when the testing service finds the compound has gone its run of days without a
    # positive; cleared by the next case. Declaring it epidemic-free stays an operator's act.
    epidemic_free_eligible_since: Mapped[datetime | None]
    # The latest case the zone policy has seen here: an eligibility counted from before it
    # (arriving late, reordered on the bus) is stale.
    last_case_at: Mapped[datetime | None]


class Gate(Scoped, Base):
    __tablename__ = "gates"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(10), default=GateState.open.value)


class Building(Scoped, Base):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("compound_id", "code"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))


class Unit(Scoped, Base):
    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("building_id", "code"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40))


class Grid(Scoped, Base):
    """A grid or, with a parent, a microgrid; it may span compounds, so its buildings are
    listed in :class:`GridBuilding` and its own compound_id is where it is administered."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("town_id", "code"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("grids.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    leader_staff_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff.id"))


class GridBuilding(Scoped, Base):
    __tablename__ = "grid_buildings"
    __table_args__ = (UniqueConstraint("grid_id", "building_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    grid_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("grids.id"), index=True)


class Household(Scoped, Base):
    """A family, identified by its code within its unit (public housing numbers households by
    room, so unit 1 and unit 2 each have a 101), or within its building when it has no unit."""

    __tablename__ = "households"
    __table_args__ = (
        UniqueConstraint("building_id", "unit_id", "code"),
        # The constraint above treats empty unit ids as distinct: one code per building too.
        partial_index(
            "uq_households_building_whole",
            "building_id",
            "code",
            where="unit_id IS NULL",
            unique=True,
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    room: Mapped[str | None] = mapped_column(String(40))


class Resident(Scoped, Base):
    __tablename__ = "residents"
    __table_args__ = (
        UniqueConstraint("document_number"),
        Index("ix_residents_building_name", "building_id", "name"),
        # Households and people per unit (zone population) from the index alone, already in
        # place order; the scope's columns carried along (PostgreSQL).
        Index(
            "ix_residents_place_household",
            "compound_id",
            "building_id",
            "unit_id",
            "household_id",
            postgresql_include=["town_id", "committee_id"],
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"), index=True)
    name: Mapped[str] = mapped_column(String(60), index=True)
    document_type: Mapped[str] = mapped_column(String(10))
    document_number: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(6))
    tags: Mapped[int] = mapped_column(Integer, default=0)
    care_notes: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(5), default="zh-CN", server_default="zh-CN")
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    registered_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ResidentMove(Scoped, Base):
    """History of a resident's households; the scope columns are those of the destination."""

    __tablename__ = "resident_moves"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("residents.id"), index=True)
    from_household_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("households.id"))
    to_household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    reason: Mapped[str] = mapped_column(String(500), default="")
    moved_by: Mapped[str] = mapped_column(String(80))
    moved_at: Mapped[datetime]


class Staff(Scoped, Base):
    """Community or town staff; ``compound_id`` is empty for committee- or town-wide staff."""

    __tablename__ = "staff"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    committee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("committees.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(80), default="")


class Volunteer(Scoped, Base):
    """A volunteer of a compound, of a committee (``compound_id`` empty) or of the town."""

    __tablename__ = "volunteers"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    committee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("committees.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    availability: Mapped[str] = mapped_column(String(200), default="")


class Team(Scoped, Base):
    """A working team of a compound or of a committee (``compound_id`` empty). Its name is
    unique where it belongs: one "Errands team" per compound, and one among a committee's
    own teams (a second answers 409 naming ``name``)."""

    __tablename__ = "teams"
    __table_args__ = (
        Index("uq_teams_compound_id_name", "compound_id", "name", unique=True),
        # The index above treats empty compound ids as distinct: a committee's own teams.
        partial_index(
            "uq_teams_committee_id_name",
            "committee_id",
            "name",
            where="compound_id IS NULL",
            unique=True,
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    committee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("committees.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120))


class TeamMember(Scoped, Base):
    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "person_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id"), index=True)
    person_kind: Mapped[str] = mapped_column(String(10))
    person_id: Mapped[uuid.UUID] = mapped_column(index=True)


class Assignment(Scoped, Base):
    """A staff member or volunteer put in charge of a compound, grid or building; the
    scope columns say where, ``grid_id`` when it is a grid."""

    __tablename__ = "assignments"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    person_kind: Mapped[str] = mapped_column(String(10))
    person_id: Mapped[uuid.UUID] = mapped_column(index=True)
    grid_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("grids.id"))
    duty: Mapped[str] = mapped_column(String(80), default="")
    assigned_at: Mapped[datetime]


class User(Scoped, Base):
    """A sign-in account. Scope columns place the account itself (who may manage it); what
    the user may see is computed at sign-in from role, committee and assignments."""

    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    committee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("committees.id"))
    person_kind: Mapped[str | None] = mapped_column(String(10))
    person_id: Mapped[uuid.UUID | None] = mapped_column()
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    # Raised whenever role, scope, password or state change: every access token issued
    # before is refused from then on, in every service (shared/sessions.py).
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    sessions_ended_at: Mapped[datetime | None] = mapped_column(index=True)


class RefreshToken(Base):
    """One refresh token of a session (a family: the chain from one sign-in). Each is used
    once; only its SHA-256 is kept. Replaying a used one ends the whole family."""

    __tablename__ = "refresh_tokens"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime]
    # The family's end: rotation does not extend a session.
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None] = mapped_column(index=True)


class Zone(Scoped, Base):
    """The current zone of a building (unit_id empty) or of one unit."""

    __tablename__ = "zones"
    __table_args__ = (
        UniqueConstraint("building_id", "unit_id"),
        # The constraint above treats empty unit ids as distinct: one building zone too.
        partial_index(
            "uq_zones_building_whole", "building_id", where="unit_id IS NULL", unique=True
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id"))
    level: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(500))
    set_by: Mapped[str] = mapped_column(String(80))
    since: Mapped[datetime]
    # The seal or the latest case in the area.
    last_positive_at: Mapped[datetime | None]
    # Start of the run of days without a positive that earns a downgrade: the latest level
    # change, case or rejected downgrade.
    quiet_since: Mapped[datetime]


class ZoneProposal(Scoped, Base):
    """A downgrade the zone policy proposes after a run of days without a positive; an
    operator approves or rejects it. At most one pending proposal per zone."""

    __tablename__ = "zone_proposals"
    __table_args__ = (
        partial_index(
            "uq_zone_proposals_pending", "zone_id", where="status = 'pending'", unique=True
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # No foreign key: the proposal outlives a lifted zone in the history.
    zone_id: Mapped[uuid.UUID] = mapped_column(index=True)
    unit_id: Mapped[uuid.UUID | None] = mapped_column()
    from_level: Mapped[str] = mapped_column(String(12))
    to_level: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default=ProposalStatus.pending.value)
    reason: Mapped[str] = mapped_column(String(500))
    proposed_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(String(500), default="")


class ZoneChange(Scoped, Base):
    __tablename__ = "zone_changes"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    unit_id: Mapped[uuid.UUID | None] = mapped_column()
    from_level: Mapped[str | None] = mapped_column(String(12))
    # A unit without a zone of its own had its building's level: from_level is that level.
    from_inherited: Mapped[bool] = mapped_column(default=False, server_default=false())
    to_level: Mapped[str | None] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(500))
    set_by: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime]


class LedgerImport(Scoped, Base):
    """One upload of the base ledger and its outcome; the same file content is applied once."""

    __tablename__ = "ledger_imports"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(12))
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    inserted: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
