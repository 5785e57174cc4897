"""Screening rounds: who they cover, their sampling sites, opening and closing, and the
door-to-door lists. A round's members (who is expected) are taken from the directory when it
is scheduled, brought up to date when it opens, and while it is open follow the residents
registered and moved (:func:`follow_residents`)."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.types import Uuid

from services.testing.models import (
    DirectoryPlace,
    DirectoryResident,
    DirectoryZone,
    MemberStatus,
    Round,
    RoundMember,
    RoundStatus,
    Site,
    Task,
    TaskStatus,
)
from services.testing.rounds import schemas
from shared.authz import FIELD, MANAGERS, Place, Relation, policy
from shared.contracts import registry
from shared.contracts.testing import RoundClosed, RoundOpened, RoundScheduled, RoundScope
from shared.db import table_of
from shared.directory.seen import scope_ids_seen_each
from shared.directory.zones import zone_level_of
from shared.events import Event
from shared.problems import Conflict, Invalid, NotFound
from shared.uow import UnitOfWork

# A round is placed where its scope's places meet (a round over one committee's compounds
# at that committee, a town-wide or zone-wide one at the town) and planned, opened and
# closed by those who manage that place: committee staff their own rounds, the town office
# the rest. Its sites are set up by those who manage the site's compound; samplers record
# tubes in any round they can see (each tube's members must be theirs to see).
PLAN = policy("rounds", "plan and run", *MANAGERS)
SITES = policy("sampling sites", "set up", *MANAGERS)
SAMPLE = policy("tubes", "record", *FIELD, relation=Relation.sees)
SCOPE_PLACE_KIND = {"compounds": "compound", "buildings": "building", "units": "unit"}


async def _round_place(uow: UnitOfWork, *, scope: RoundScope, town_id: uuid.UUID) -> Place:
    """Where a round goes: the place its scope's places have in common; a 404 naming the
    first place the caller cannot see."""
    kind = SCOPE_PLACE_KIND.get(scope.kind)
    if not uow.scope.allows(town_id=town_id):
        raise NotFound.on("town_id", f"no town {town_id} in your scope")
    if kind is None:
        return Place(town_id)
    found = {
        p.id: p
        for p in await uow.session.scalars(
            select(DirectoryPlace).where(
                DirectoryPlace.kind == kind,
                DirectoryPlace.town_id == town_id,
                DirectoryPlace.id.in_(scope.ids),
            )
        )
    }
    errors = [
        {"field": f"scope.ids.{n}", "message": f"no {kind} {place_id} in your scope"}
        for n, place_id in enumerate(scope.ids)
        if place_id not in found
    ]
    if errors:
        raise NotFound(errors[0]["message"], errors=errors)
    compounds = {p.compound_id for p in found.values()}
    committees: dict[uuid.UUID | None, uuid.UUID | None] = dict(
        (
            await uow.session.execute(
                select(DirectoryPlace.id, DirectoryPlace.committee_id).where(
                    DirectoryPlace.kind == "compound", DirectoryPlace.id.in_(compounds)
                )
            )
        ).all()
    )
    places = [
        Place(p.town_id, committees.get(p.compound_id), p.compound_id, p.building_id)
        for p in found.values()
    ]
    return Place.common(places, town_id=town_id)


def _residents_in(scope: RoundScope, town_id: uuid.UUID) -> Any:
    """The directory residents a round's scope covers, as a condition on the directory."""
    residents = table_of(DirectoryResident)
    in_town = residents.c.town_id == town_id
    match scope.kind:
        case "town":
            return in_town
        case "compounds":
            return and_(in_town, residents.c.compound_id.in_(scope.ids))
        case "buildings":
            return and_(in_town, residents.c.building_id.in_(scope.ids))
        case "units":
            return and_(in_town, residents.c.unit_id.in_(scope.ids))
        case _:
            level = zone_level_of(
                table_of(DirectoryZone),
                building_id=residents.c.building_id,
                unit_id=residents.c.unit_id,
            )
            return and_(in_town, level == scope.zone_level)


async def add_members(
    uow: UnitOfWork, round_: Round, *, resident_ids: Sequence[uuid.UUID] | None = None
) -> None:
    """Add the directory's residents in the round's scope who are not members yet (all of
    them, or only those listed)."""
    residents = table_of(DirectoryResident)
    members = table_of(RoundMember)
    scope = RoundScope.model_validate(round_.scope)
    already = exists().where(
        members.c.round_id == round_.id, members.c.resident_id == residents.c.id
    )
    columns = [
        "round_id",
        "resident_id",
        "household_id",
        "unit_id",
        "town_id",
        "compound_id",
        "building_id",
        "door_to_door",
        "status",
    ]
    source = select(
        literal(round_.id, Uuid),
        residents.c.id,
        residents.c.household_id,
        residents.c.unit_id,
        residents.c.town_id,
        residents.c.compound_id,
        residents.c.building_id,
        residents.c.door_to_door,
        literal(MemberStatus.expected.value),
    ).where(_residents_in(scope, round_.town_id), ~already)
    if resident_ids is not None:
        source = source.where(residents.c.id.in_(resident_ids))
    await uow.session.execute(insert(members).from_select(columns, source))


# Where a member is counted: the directory's columns copied onto the member row.
_WHERE_THEY_LIVE = ("household_id", "unit_id", "compound_id", "building_id", "door_to_door")


async def follow_residents(uow: UnitOfWork, event: Event) -> None:
    """Open rounds follow the directory (run after it applies each registry event): a
    resident registered while a round is open joins it if its scope covers them (a visitor
    registered at 2 a.m. is sampled that night); one moved before being sampled is counted
    where they live now, or leaves a round whose scope no longer covers them; a unit sealed
    at 3 a.m. joins the open round of sealed areas, and one whose seal is lifted leaves it.
    A member already sampled stays where the swab was taken."""
    match event:
        case registry.ResidentRegistered(resident=r) | registry.ResidentUpdated(resident=r):
            await _follow_all(uow, await _open_rounds(uow, {r.town_id}), [r.id])
        case (
            registry.ResidentsImported(residents=records)
            | registry.ResidentsSnapshot(residents=records)
        ):
            rounds = await _open_rounds(uow, {r.town_id for r in records}) if records else []
            await _follow_all(uow, rounds, [r.id for r in records])
        case registry.ZoneChanged() as change:
            # Only a round of a zone level covers by zones; without one open (most of the
            # time), the building's residents are not even read.
            rounds = await _open_rounds(uow, {change.town_id}, kind="zone_level")
            if not rounds:
                return
            residents = select(DirectoryResident.id).where(
                DirectoryResident.building_id == change.building_id
            )
            if change.unit_id is not None:
                residents = residents.where(DirectoryResident.unit_id == change.unit_id)
            await _follow_all(uow, rounds, list(await uow.session.scalars(residents)))


async def _open_rounds(
    uow: UnitOfWork, towns: set[uuid.UUID], *, kind: str | None = None
) -> list[Round]:
    """The open rounds of these towns (of this scope kind)."""
    query = select(Round).where(Round.status == RoundStatus.open.value, Round.town_id.in_(towns))
    rounds = (await uow.session.scalars(query)).all()
    return [r for r in rounds if kind is None or r.scope.get("kind") == kind]


async def _follow_all(
    uow: UnitOfWork, rounds: Sequence[Round], resident_ids: Sequence[uuid.UUID]
) -> None:
    for round_ in rounds:
        # Ids per IN list, well under SQLite's bound-parameter limit.
        for n in range(0, len(resident_ids), 5_000):
            await _follow(uow, round_, resident_ids[n : n + 5_000])


async def _follow(uow: UnitOfWork, round_: Round, resident_ids: Sequence[uuid.UUID]) -> None:
    residents, members = table_of(DirectoryResident), table_of(RoundMember)
    scope = RoundScope.model_validate(round_.scope)
    not_sampled = and_(
        members.c.round_id == round_.id,
        members.c.resident_id.in_(resident_ids),
        members.c.status == MemberStatus.expected.value,
    )
    covered = (
        select(residents.c.id)
        .where(residents.c.id == members.c.resident_id, _residents_in(scope, round_.town_id))
        .exists()
    )
    await uow.session.execute(delete(members).where(not_sampled, ~covered))

    def now_at(column: str) -> Any:
        return (
            select(residents.c[column])
            .where(residents.c.id == members.c.resident_id)
            .scalar_subquery()
        )

    await uow.session.execute(
        update(members)
        .where(not_sampled)
        .values({column: now_at(column) for column in _WHERE_THEY_LIVE})
    )
    await add_members(uow, round_, resident_ids=resident_ids)


async def expected(uow: UnitOfWork, round_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(RoundMember).where(RoundMember.round_id == round_id)
    return int(await uow.session.scalar(query) or 0)


async def present(uow: UnitOfWork, round_: Round, *, expected: int) -> schemas.RoundOut:
    """A round as the caller may read it, with ``expected`` its members in their scope (the
    members are read through it, as coverage reads them). One placed above their scope (the
    town office's over two committees' compounds) shows only the places of its scope they
    see."""
    [out] = await present_all(uow, [round_], expected={round_.id: expected})
    return out


async def present_all(
    uow: UnitOfWork, rounds: Sequence[Round], *, expected: dict[uuid.UUID, int]
) -> list[schemas.RoundOut]:
    """:func:`present` for a page of rounds, their places read at once."""
    shown = [schemas.RoundOut.model_validate(r) for r in rounds]
    named = [(r, out.scope.ids) for r, out in zip(rounds, shown, strict=True)]
    seen_each = await scope_ids_seen_each(uow, rows=DirectoryPlace, named=named)
    return [
        out.model_copy(
            update={
                "scope": out.scope.model_copy(update={"ids": ids}),
                "expected": expected.get(out.id, 0),
            }
        )
        for out, ids in zip(shown, seen_each, strict=True)
    ]


async def schedule_round(uow: UnitOfWork, *, data: schemas.RoundCreate) -> tuple[Round, int]:
    PLAN.check_role(uow)
    place = await _round_place(uow, scope=data.scope, town_id=data.town_id)
    PLAN.check(uow, place, field="scope")
    round_ = Round(
        **place.columns(),
        name=data.name,
        kind=data.kind,
        status=RoundStatus.scheduled.value,
        scope=data.scope.model_dump(mode="json"),
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        pool_size=data.pool_size,
        created_by=uow.principal.username,
        created_at=datetime.now(UTC),
    )
    uow.session.add(round_)
    await uow.session.flush()
    await add_members(uow, round_)
    count = await expected(uow, round_.id)
    uow.emit(
        RoundScheduled(
            round_id=round_.id,
            town_id=round_.town_id,
            name=round_.name,
            kind=data.kind,
            scope=data.scope,
            starts_at=round_.starts_at,
            ends_at=round_.ends_at,
            pool_size=round_.pool_size,
            expected=count,
        )
    )
    return round_, count


async def get_round(uow: UnitOfWork, round_id: uuid.UUID, *, field: str | None = None) -> Round:
    return await uow.get(Round, round_id, what="round", field=field)


async def open_round(uow: UnitOfWork, *, round_id: uuid.UUID) -> Round:
    round_ = await get_round(uow, round_id)
    PLAN.check(uow, Place.of(round_))
    if round_.status == RoundStatus.open.value:
        return round_
    if round_.status == RoundStatus.closed.value:
        raise Conflict(f"round {round_.name} is closed; schedule a new one")
    await add_members(uow, round_)
    round_.status, round_.opened_at = RoundStatus.open.value, datetime.now(UTC)
    uow.emit(RoundOpened(round_id=round_.id, town_id=round_.town_id, at=round_.opened_at))
    return round_


async def close_round(uow: UnitOfWork, *, round_id: uuid.UUID) -> Round:
    round_ = await get_round(uow, round_id)
    PLAN.check(uow, Place.of(round_))
    if round_.status == RoundStatus.closed.value:
        return round_
    round_.status, round_.closed_at = RoundStatus.closed.value, datetime.now(UTC)
    counts = (
        await uow.session.execute(
            select(
                func.count(),
                func.count(RoundMember.sampled_at),
            ).where(RoundMember.round_id == round_.id)
        )
    ).one()
    total, sampled = int(counts[0]), int(counts[1])
    uow.emit(
        RoundClosed(
            round_id=round_.id,
            town_id=round_.town_id,
            at=round_.closed_at,
            expected=total,
            sampled=sampled,
            missed=total - sampled,
        )
    )
    return round_


async def create_site(uow: UnitOfWork, *, round_id: uuid.UUID, data: schemas.SiteCreate) -> Site:
    round_ = await get_round(uow, round_id)
    SITES.check_role(uow)
    compound = await uow.get(DirectoryPlace, data.compound_id, what="compound", field="compound_id")
    SITES.check(uow, Place.of(compound), field="compound_id")
    _check_slots(round_, data.slots)
    in_round = select(RoundMember.resident_id).where(
        RoundMember.round_id == round_.id, RoundMember.compound_id == compound.id
    )
    if await uow.session.scalar(in_round.limit(1)) is None:
        raise Invalid.on("compound_id", f"no one in compound {compound.code} is in this round")
    wanted = set(data.building_ids) | {b for slot in data.slots for b in slot.building_ids}
    found = set(
        await uow.session.scalars(
            select(DirectoryPlace.id).where(
                DirectoryPlace.kind == "building",
                DirectoryPlace.compound_id == compound.id,
                DirectoryPlace.id.in_(wanted),
            )
        )
    )
    if missing := sorted(wanted - found):
        message = f"building {missing[0]} is not in compound {compound.code}"
        raise Invalid(message, errors=[{"field": "building_ids", "message": message}])
    site = Site(
        round_id=round_.id,
        town_id=compound.town_id,
        compound_id=compound.id,
        name=data.name,
        building_ids=[str(b) for b in data.building_ids],
        slots=[slot.model_dump(mode="json") for slot in data.slots],
    )
    uow.session.add(site)
    await uow.session.flush()
    return site


async def present_sites(uow: UnitOfWork, sites: Sequence[Site]) -> list[schemas.SiteOut]:
    """Sites as the caller may read them (one read for them all). One placed above their
    scope (at its compound, read by a leader of one of its buildings) names only the
    buildings they see, and keeps only the slots that serve one of them: the others'
    buildings and hours are not theirs. A site serving only buildings they do not see is
    not theirs at all: it is left out (shown with no building, it would read as the whole
    compound's)."""
    shown = [schemas.SiteOut.model_validate(site) for site in sites]
    named = [
        (site, [*out.building_ids, *(b for slot in out.slots for b in slot.building_ids)])
        for site, out in zip(sites, shown, strict=True)
    ]
    seen_each = await scope_ids_seen_each(uow, rows=DirectoryPlace, named=named)
    theirs = []
    for out, (_, ids), seen_ids in zip(shown, named, seen_each, strict=True):
        seen = set(seen_ids)
        if seen == set(ids):
            theirs.append(out)
        elif not out.building_ids or seen.intersection(out.building_ids):
            theirs.append(_narrowed(out, seen))
    return theirs


def _narrowed(out: schemas.SiteOut, seen: set[uuid.UUID]) -> schemas.SiteOut:
    slots = [
        slot.model_copy(update={"building_ids": [b for b in slot.building_ids if b in seen]})
        for slot in out.slots
        # A slot naming no building serves the whole site, theirs too.
        if not slot.building_ids or seen.intersection(slot.building_ids)
    ]
    building_ids = [b for b in out.building_ids if b in seen]
    return out.model_copy(update={"building_ids": building_ids, "slots": slots})


def _check_slots(round_: Round, slots: Sequence[schemas.Slot]) -> None:
    """Each slot ends after it starts, inside its round's window."""
    for n, slot in enumerate(slots):
        if slot.ends_at <= slot.starts_at:
            raise Invalid.on(f"slots.{n}.ends_at", "a slot must end after it starts")
        for name in ("starts_at", "ends_at"):
            at = getattr(slot, name)
            if not round_.starts_at <= at <= round_.ends_at:
                raise Invalid.on(
                    f"slots.{n}.{name}",
                    f"{name} {at.isoformat()} is outside the round's window "
                    f"({round_.starts_at.isoformat()} to {round_.ends_at.isoformat()})",
                )


async def check_place(
    uow: UnitOfWork, place_id: uuid.UUID | None, *, kind: str, field: str
) -> None:
    """A place asked for by a read's filter: in the caller's scope and of the kind asked,
    else a 404 naming the field (not an empty answer that reads as nobody there)."""
    if place_id is None:
        return
    place = await uow.get(DirectoryPlace, place_id, what=kind, field=field)
    if place.kind != kind:
        message = f"{place_id} is a {place.kind}, not a {kind}"
        raise NotFound(message, errors=[{"field": field, "message": message}])


async def door_to_door(
    uow: UnitOfWork,
    *,
    round_id: uuid.UUID,
    building_id: uuid.UUID | None,
) -> list[schemas.DoorToDoorBuilding]:
    """Who the samplers must visit: residents of sealed units or buildings, the bedridden
    and disabled, and anyone with an open retest or resample, grouped by building."""
    await get_round(uow, round_id)
    await check_place(uow, building_id, kind="building", field="building_id")
    sealed = (
        zone_level_of(
            table_of(DirectoryZone),
            building_id=RoundMember.building_id,
            unit_id=RoundMember.unit_id,
        )
        == "sealed"
    )
    open_task = (
        select(Task.kind)
        .where(
            Task.resident_id == RoundMember.resident_id,
            Task.round_id == round_id,
            Task.status == TaskStatus.open.value,
        )
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(RoundMember, DirectoryResident, sealed.label("sealed"), open_task.label("task"))
        .join(DirectoryResident, DirectoryResident.id == RoundMember.resident_id)
        .where(
            RoundMember.round_id == round_id,
            or_(RoundMember.door_to_door, sealed, open_task.is_not(None)),
        )
        .order_by(RoundMember.building_id, RoundMember.unit_id, DirectoryResident.name)
    )
    if building_id is not None:
        query = query.where(RoundMember.building_id == building_id)
    rows = (await uow.session.execute(query)).all()
    return await _by_building(uow, rows)


async def _by_building(uow: UnitOfWork, rows: Sequence[Any]) -> list[schemas.DoorToDoorBuilding]:
    """Residents in clear, by building (the endpoint's presenter masks them)."""
    codes = dict(
        (
            await uow.session.execute(
                select(DirectoryPlace.id, DirectoryPlace.code).where(
                    DirectoryPlace.id.in_({r.RoundMember.building_id for r in rows})
                )
            )
        ).all()
    )
    buildings: dict[uuid.UUID | None, schemas.DoorToDoorBuilding] = {}
    for member, resident, is_sealed, task in rows:
        reasons = ["sealed"] if is_sealed else []
        reasons += [t for t in ("bedridden", "disabled") if t in resident.tags]
        if task is not None:
            reasons.append("retest" if task == "retest" else "resample")
        group = buildings.setdefault(
            member.building_id,
            schemas.DoorToDoorBuilding(
                building_id=member.building_id,
                building_code=codes.get(member.building_id),
                compound_id=member.compound_id,
                residents=[],
            ),
        )
        group.residents.append(
            schemas.DoorToDoorResident(
                resident_id=member.resident_id,
                name=resident.name,
                unit_id=member.unit_id,
                household_id=member.household_id,
                phone=resident.phone,
                reasons=reasons,
                status=member.status,
            )
        )
    return list(buildings.values())
