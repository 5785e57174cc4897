"""Zones of buildings and units, and compounds' status. Every change is kept in history and
published; setting what is already set changes nothing."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from services.registry.models import (
    Building,
    Compound,
    CompoundStatus,
    ProposalStatus,
    Unit,
    Zone,
    ZoneChange,
    ZoneLevel,
    ZoneProposal,
)
from services.registry.zones import repository, schemas
from shared.authz import MANAGERS, TOWN, Place, policy
from shared.contracts.registry import CompoundStatusChanged, ZoneChanged
from shared.problems import Conflict, Invalid
from shared.uow import UnitOfWork

# Zones and a compound's closing are set by those who manage the compound; declaring a
# compound epidemic-free is the town office's act.
ZONES = policy("zones", "set", *MANAGERS)
DECLARE_EPIDEMIC_FREE = policy("compounds", "declare epidemic-free", *TOWN)


async def zone_of(
    uow: UnitOfWork, *, building_id: uuid.UUID, unit_id: uuid.UUID | None
) -> Zone | None:
    """The area's current zone, locked for this transaction: every change of a zone (by an
    operator, a case, a decided proposal) takes this lock first, so they apply one by one."""
    area = Zone.unit_id.is_(None) if unit_id is None else Zone.unit_id == unit_id
    query = select(Zone).where(Zone.building_id == building_id, area).with_for_update()
    return await uow.session.scalar(query)


async def set_zone(
    uow: UnitOfWork,
    *,
    building_id: uuid.UUID,
    unit_id: uuid.UUID | None,
    level: ZoneLevel | None,
    reason: str,
    set_by: str | None = None,
    downgrade: bool = False,
) -> tuple[bool, Zone | None]:
    """Set (or lift, with no level) the zone of a building or unit; say whether it changed.
    A change restarts the area's downgrade clock and supersedes its pending proposal.

    A unit set below the level of its building's zone leaves that zone: a downgrade, so
    only with ``downgrade`` (Conflict otherwise), recorded from the building's level when
    the unit had no zone of its own. A building made stricter takes its units with zones of
    their own below its new level along (:func:`_raise_units`)."""
    building = await uow.get(Building, building_id, what="building", field="building_id")
    ZONES.check(uow, Place.of(building), field="building_id")
    inherited = None
    if unit_id is not None:
        unit = await uow.get(Unit, unit_id, what="unit", field="unit_id")
        if unit.building_id != building.id:
            message = f"unit {unit.code} is not in building {building.code}"
            raise Invalid(message, errors=[{"field": "unit_id", "message": message}])
        # The building's lock first, as a case's sealing takes them.
        building_zone = await zone_of(uow, building_id=building.id, unit_id=None)
        inherited = building_zone.level if building_zone else None
    current = await zone_of(uow, building_id=building.id, unit_id=unit_id)
    before = current.level if current else None
    after = level.value if level else None
    if before == after:
        return False, current
    below = inherited is not None and after is not None and _rank(after) < _rank(inherited)
    if below and not downgrade:
        message = (
            f"unit {unit.code} is in building {building.code}'s {inherited} zone: setting it "
            f"{after} releases it from that zone; send downgrade=true to confirm the downgrade"
        )
        raise Conflict(message, errors=[{"field": "downgrade", "message": message}])
    from_inherited = before is None and inherited is not None
    if from_inherited:
        before = inherited
    now = datetime.now(UTC)
    who = set_by or uow.principal.username
    if current is not None:
        await supersede_proposals(uow, zone_id=current.id, by=who, note=reason, at=now)
    if current is not None and after is None:
        await uow.session.delete(current)
        current = None
    elif current is not None and after is not None:
        current.level, current.reason, current.set_by, current.since = after, reason, who, now
    elif after is not None:
        current = Zone(
            town_id=building.town_id,
            compound_id=building.compound_id,
            building_id=building.id,
            unit_id=unit_id,
            level=after,
            reason=reason,
            set_by=who,
            since=now,
        )
        uow.session.add(current)
    if current is not None:
        current.quiet_since = now
        if after == ZoneLevel.sealed:
            current.last_positive_at = now
    uow.session.add(
        ZoneChange(
            town_id=building.town_id,
            compound_id=building.compound_id,
            building_id=building.id,
            unit_id=unit_id,
            from_level=before,
            from_inherited=from_inherited,
            to_level=after,
            reason=reason,
            set_by=who,
            at=now,
        )
    )
    await uow.session.flush()
    # A building's units with a zone of their own: named in its event, raised with it.
    units = [] if unit_id is not None else await _unit_zones(uow, building_id=building.id)
    uow.emit(
        ZoneChanged(
            town_id=building.town_id,
            compound_id=building.compound_id,
            building_id=building.id,
            unit_id=unit_id,
            from_level=before,
            to_level=after,
            reason=reason,
            set_by=who,
            at=now,
            from_inherited=from_inherited,
            units_apart=None if unit_id is not None else [z.unit_id for z in units],
        ),
        compound_id=building.compound_id,
    )
    if unit_id is None and after is not None and (before is None or _rank(after) > _rank(before)):
        await _raise_units(
            uow, building=building, zones=units, level=after, reason=reason, set_by=who
        )
    return True, current


async def _unit_zones(uow: UnitOfWork, *, building_id: uuid.UUID) -> list[Zone]:
    """The building's units' own zones, locked (in one order) until the change commits."""
    query = (
        select(Zone)
        .where(Zone.building_id == building_id, Zone.unit_id.is_not(None))
        .order_by(Zone.unit_id)
        .with_for_update()
    )
    return list(await uow.session.scalars(query))


async def _raise_units(
    uow: UnitOfWork,
    *,
    building: Building,
    zones: list[Zone],
    level: str,
    reason: str,
    set_by: str,
) -> None:
    """A building sealed (or made stricter) seals each of its units: a unit's own zone wins
    over its building's (``shared/directory/zones.py``), so a unit controlled, or released
    from an earlier seal, would otherwise stay below its building, out of the new seal,
    with nobody having decided it. Each unit raised is its own recorded change."""
    for zone in zones:
        if _rank(zone.level) < _rank(level):
            await set_zone(
                uow,
                building_id=building.id,
                unit_id=zone.unit_id,
                level=ZoneLevel(level),
                reason=f"building {building.code} {level}: {reason}"[:500],
                set_by=set_by,
            )


_RANKS = {ZoneLevel.precaution: 1, ZoneLevel.controlled: 2, ZoneLevel.sealed: 3}


def _rank(level: str) -> int:
    """How strict a level is: sealed above controlled above precaution."""
    return _RANKS[ZoneLevel(level)]


async def supersede_proposals(
    uow: UnitOfWork, *, zone_id: uuid.UUID, by: str, note: str, at: datetime
) -> None:
    """The zone's pending downgrade proposal no longer stands (its zone changed or had a case)."""
    await uow.session.execute(
        update(ZoneProposal)
        .where(
            ZoneProposal.zone_id == zone_id,
            ZoneProposal.status == ProposalStatus.pending.value,
        )
        .values(
            status=ProposalStatus.superseded.value, decided_by=by, decided_at=at, note=note[:500]
        )
    )


async def set_compound_status(
    uow: UnitOfWork,
    *,
    compound_id: uuid.UUID,
    status: CompoundStatus,
    reason: str,
    override_reason: str | None = None,
) -> Compound:
    """Change a compound's status. Epidemic-free is a town operator's act, refused (Conflict)
    unless the compound was found eligible and has no sealed area, or the operator says why
    it is declared anyway (kept in the status reason and the event)."""
    compound = await uow.get(Compound, compound_id, what="compound")
    if status is CompoundStatus.epidemic_free:
        DECLARE_EPIDEMIC_FREE.check(uow, Place.of(compound))
    else:
        ZONES.check(uow, Place.of(compound))
    if compound.status == status.value:
        return compound
    override = (override_reason or "").strip() or None
    overridden: list[str] = []
    if status is CompoundStatus.epidemic_free:
        overridden = await _not_ready(uow, compound)
        if overridden and override is None:
            raise Conflict(
                f"compound {compound.code} cannot be declared epidemic-free: "
                + "; ".join(overridden),
                errors=[{"field": "status", "message": m} for m in overridden],
            )
        if overridden:
            reason = f"{reason} (override: {override}; overriding: {'; '.join(overridden)})"
    before = compound.status
    now = datetime.now(UTC)
    compound.status, compound.status_since = status.value, now
    compound.status_reason = reason[:500]
    await uow.session.flush()
    uow.emit(
        CompoundStatusChanged(
            town_id=compound.town_id,
            compound_id=compound.id,
            from_status=before,
            to_status=status.value,
            reason=reason,
            at=now,
            override_reason=override if overridden else None,
            overridden=overridden,
        ),
        compound_id=compound.id,
    )
    return compound


async def _not_ready(uow: UnitOfWork, compound: Compound) -> list[str]:
    """Why the compound may not be declared epidemic-free now, if anything."""
    found: list[str] = []
    if compound.epidemic_free_eligible_since is None:
        found.append(
            "it was never found eligible (its town's run of days without a positive "
            "has not been reported)"
        )
    sealed = (
        select(Building.code, Unit.code)
        .select_from(Zone)
        .join(Building, Building.id == Zone.building_id)
        .outerjoin(Unit, Unit.id == Zone.unit_id)
        .where(Zone.compound_id == compound.id, Zone.level == ZoneLevel.sealed.value)
        .order_by(Building.code, Unit.code)
    )
    for building, unit in (await uow.session.execute(sealed)).all():
        area = f"building {building}" if unit is None else f"unit {unit} of building {building}"
        found.append(f"{area} is sealed")
    return found


async def population(
    uow: UnitOfWork, *, by: repository.PopulationGrouping, compound_id: uuid.UUID | None
) -> list[schemas.Population]:
    rows = await uow.session.execute(repository.population(by=by, compound_id=compound_id))
    return [schemas.Population.model_validate(row, from_attributes=True) for row in rows]


async def zone_counts(uow: UnitOfWork, *, compound_id: uuid.UUID | None) -> list[schemas.ZoneCount]:
    query: Any = select(
        Zone.compound_id,
        Zone.level,
        func.count().filter(Zone.unit_id.is_(None)).label("buildings"),
        func.count().filter(Zone.unit_id.is_not(None)).label("units"),
    ).group_by(Zone.compound_id, Zone.level)
    if compound_id is not None:
        query = query.where(Zone.compound_id == compound_id)
    rows = (await uow.session.execute(query.order_by(Zone.compound_id, Zone.level))).all()
    return [
        schemas.ZoneCount(compound_id=c, level=level, buildings=b, units=u)
        for c, level, b, u in rows
    ]
