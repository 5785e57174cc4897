"""The zone policy: a confirmed case seals its unit or building (as the town chooses); an
area that goes the town's run of days without a positive is proposed a downgrade, sealed to
controlled, then controlled to precaution; operators approve or reject every proposal, so
nothing downgrades silently."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import case as case_
from sqlalchemy import func, select, update

from services.registry.models import (
    Building,
    Compound,
    ProposalStatus,
    SealGranularity,
    Town,
    Zone,
    ZoneLevel,
    ZoneProposal,
)
from services.registry.zones import schemas
from services.registry.zones.service import set_zone, supersede_proposals, zone_of
from shared.authz import MANAGERS, TOWN, Place, policy
from shared.contracts.testing import CaseConfirmed, CompoundEpidemicFreeEligible
from shared.db import insert_ignoring_duplicates, table_of
from shared.events import Envelope
from shared.observability import PROJECTION_STALE
from shared.problems import Conflict
from shared.uow import UnitOfWork

POLICY = "zone-policy"
DOWNGRADES = {ZoneLevel.sealed: ZoneLevel.controlled, ZoneLevel.controlled: ZoneLevel.precaution}


# Downgrades are decided by those who manage the zone's compound; the town's rules by the
# town office.
DECIDE = policy("zone proposals", "decide", *MANAGERS)
TOWN_POLICY = policy("zone policy", "set", *TOWN)


async def on_testing_event(uow: UnitOfWork, envelope: Envelope) -> None:
    event = envelope.event()
    if isinstance(event, CaseConfirmed):
        await seal_for_case(uow, case=event)
    elif isinstance(event, CompoundEpidemicFreeEligible):
        await mark_epidemic_free_eligible(uow, event=event)


async def seal_for_case(uow: UnitOfWork, *, case: CaseConfirmed) -> None:
    """Seal the case's area unless it is sealed already; either way the case restarts the
    clocks of the zones around it and supersedes their pending proposals."""
    now = datetime.now(UTC)
    reason = f"case {case.case_id} confirmed {case.confirmed_at:%Y-%m-%d %H:%M} UTC"
    building = await uow.get(Building, case.building_id, what="building")
    town = await uow.get(Town, building.town_id, what="town")
    building_zone = await zone_of(uow, building_id=building.id, unit_id=None)
    unit_zone = (
        await zone_of(uow, building_id=building.id, unit_id=case.unit_id) if case.unit_id else None
    )
    around = unit_zone or building_zone
    if around is None or around.level != ZoneLevel.sealed:
        for area in _areas_to_seal(town, case.unit_id, unit_zone):
            await set_zone(
                uow,
                building_id=building.id,
                unit_id=area,
                level=ZoneLevel.sealed,
                reason=reason,
                set_by=POLICY,
            )
    for area in dict.fromkeys([None, case.unit_id]):
        zone = await zone_of(uow, building_id=building.id, unit_id=area)
        if zone is not None:
            await _restart_clock(uow, zone, positive_at=case.confirmed_at, note=reason, now=now)
    latest = func.coalesce(Compound.last_case_at, case.confirmed_at)
    await uow.session.execute(
        update(Compound)
        .where(Compound.id == building.compound_id)
        .values(
            epidemic_free_eligible_since=None,
            last_case_at=case_((latest > case.confirmed_at, latest), else_=case.confirmed_at),
        )
    )


def _areas_to_seal(
    town: Town, unit_id: uuid.UUID | None, unit_zone: Zone | None
) -> list[uuid.UUID | None]:
    """The unit, or the whole building when the town seals buildings or the case has no
    unit; then also the unit if its own zone would still override the building's."""
    if unit_id is not None and town.seal_granularity == SealGranularity.unit:
        return [unit_id]
    return [None] if unit_zone is None else [None, unit_id]


async def _restart_clock(
    uow: UnitOfWork, zone: Zone, *, positive_at: datetime, note: str, now: datetime
) -> None:
    # A late event must not move the clock back.
    zone.last_positive_at = max(zone.last_positive_at or positive_at, positive_at)
    zone.quiet_since = max(zone.quiet_since, positive_at)
    await supersede_proposals(uow, zone_id=zone.id, by=POLICY, note=note, at=now)


async def mark_epidemic_free_eligible(
    uow: UnitOfWork, *, event: CompoundEpidemicFreeEligible
) -> None:
    """Record the compound's eligibility, unless a case arrived that the testing service's
    clock had not counted (events are not delivered in order: the eligibility may have been
    retried past a later case)."""
    compound = await uow.get(Compound, event.compound_id, what="compound")
    counted = event.last_positive_at
    if compound.last_case_at is not None and (counted is None or compound.last_case_at > counted):
        PROJECTION_STALE.labels(uow.service, POLICY, "compounds").inc()
        return
    if compound.epidemic_free_eligible_since is None:
        compound.epidemic_free_eligible_since = event.at


async def propose_downgrades(uow: UnitOfWork, now: datetime) -> None:
    """The periodic job: propose a downgrade for every sealed or controlled zone whose clock
    has run the town's days and that has no pending proposal. Every worker replica runs it:
    zones another replica is proposing for are skipped, and the pending-proposal index
    refuses a second one."""
    towns = (await uow.session.execute(select(Town.id, Town.downgrade_after_days))).all()
    proposals = table_of(ZoneProposal)
    for town_id, days in towns:
        pending = select(ZoneProposal.id).where(
            ZoneProposal.zone_id == Zone.id, ZoneProposal.status == ProposalStatus.pending.value
        )
        due = (
            select(Zone)
            .where(
                Zone.town_id == town_id,
                Zone.level.in_([level.value for level in DOWNGRADES]),
                Zone.quiet_since <= now - timedelta(days=days),
                ~pending.exists(),
            )
            .with_for_update(of=Zone, skip_locked=True)
        )
        for zone in (await uow.session.scalars(due)).all():
            level = ZoneLevel(zone.level)
            await uow.session.execute(
                insert_ignoring_duplicates(proposals, uow.dialect).values(
                    town_id=zone.town_id,
                    compound_id=zone.compound_id,
                    building_id=zone.building_id,
                    unit_id=zone.unit_id,
                    zone_id=zone.id,
                    from_level=level.value,
                    to_level=DOWNGRADES[level].value,
                    status=ProposalStatus.pending.value,
                    reason=_proposal_reason(zone, days),
                    proposed_at=now,
                    note="",
                )
            )


def _proposal_reason(zone: Zone, days: int) -> str:
    last = f"{zone.last_positive_at:%Y-%m-%d %H:%M} UTC" if zone.last_positive_at else "none"
    return (
        f"{days} days {zone.level} without a positive since {zone.quiet_since:%Y-%m-%d %H:%M} "
        f"UTC (last positive: {last})"
    )


async def decide(
    uow: UnitOfWork, *, proposal_id: uuid.UUID, approve: bool, note: str
) -> ZoneProposal:
    """Approve (apply the downgrade, published as ``registry.zone.changed``) or reject (the
    area's clock restarts now) a pending proposal."""
    proposal = await uow.get(ZoneProposal, proposal_id, what="zone proposal")
    DECIDE.check(uow, Place.of(proposal))
    assert proposal.building_id is not None
    # The zone's lock first, as every zone change takes it; then the proposal as it is now.
    zone = await zone_of(uow, building_id=proposal.building_id, unit_id=proposal.unit_id)
    await uow.session.refresh(proposal, with_for_update=True)
    if zone is None or proposal.status != ProposalStatus.pending:
        raise Conflict(f"zone proposal {proposal.id} is no longer pending: {proposal.status}")
    now = datetime.now(UTC)
    proposal.decided_by, proposal.decided_at, proposal.note = uow.principal.username, now, note
    if approve:
        proposal.status = ProposalStatus.approved.value
        await uow.session.flush()
        reason = f"downgrade proposal {proposal.id} approved" + (f": {note}" if note else "")
        await set_zone(
            uow,
            building_id=proposal.building_id,
            unit_id=proposal.unit_id,
            level=ZoneLevel(proposal.to_level),
            reason=reason[:500],
            # Approving is the operator's explicit act of downgrading, even below the level
            # the area's building has.
            downgrade=True,
        )
    else:
        proposal.status = ProposalStatus.rejected.value
        zone.quiet_since = now
        await uow.session.flush()
    return proposal


async def set_town_policy(
    uow: UnitOfWork, *, town_id: uuid.UUID, data: schemas.TownPolicySet
) -> Town:
    town = await uow.get(Town, town_id, what="town")
    TOWN_POLICY.check(uow, Place(town.id))
    if data.seal_granularity is not None:
        town.seal_granularity = data.seal_granularity.value
    if data.downgrade_after_days is not None:
        town.downgrade_after_days = data.downgrade_after_days
    await uow.session.flush()
    return town
