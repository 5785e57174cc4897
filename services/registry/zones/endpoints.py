import uuid

from sqlalchemy import select

from services.registry.models import (
    SERVICE,
    Compound,
    ProposalStatus,
    Town,
    Zone,
    ZoneChange,
    ZoneLevel,
    ZoneProposal,
)
from services.registry.places.schemas import CompoundOut, TownOut
from services.registry.zones import policy, schemas, service
from services.registry.zones.repository import PopulationGrouping
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page, keyset, next_cursor

router = service_router(SERVICE, tags=["zones"])


@router.get("/zones", response_model=Page[schemas.ZoneOut], summary="Current zones")
async def list_zones(
    uow: Uow,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    level: ZoneLevel | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.ZoneOut]:
    query = select(Zone)
    if compound_id is not None:
        query = query.where(Zone.compound_id == compound_id)
    if building_id is not None:
        query = query.where(Zone.building_id == building_id)
    if level is not None:
        query = query.where(Zone.level == level.value)
    rows = list(await uow.session.scalars(keyset(query, Zone.id, cursor=cursor, limit=limit)))
    page, following = next_cursor(rows, limit)
    return Page(items=[schemas.ZoneOut.model_validate(z) for z in page], next_cursor=following)


@router.post(
    "/zones",
    response_model=schemas.ZoneResult,
    summary="Seal, control, set precaution on, or lift a building or unit",
    description="Always 200: `changed` says whether anything changed. Every change is kept "
    "in the history and published as `registry.zone.changed`; setting the level an area "
    "has already changes nothing. A unit's zone overrides its building's for its residents: "
    "setting a unit below its building's level is a downgrade that needs `downgrade: true` "
    "(409 without), recorded in the history from the building's level (`from_inherited`). "
    "A change restarts the area's downgrade clock and supersedes its pending proposal.",
)
async def set_zone(body: schemas.ZoneSet, uow: Uow) -> schemas.ZoneResult:
    changed, zone = await service.set_zone(
        uow,
        building_id=body.building_id,
        unit_id=body.unit_id,
        level=body.level,
        reason=body.reason,
        downgrade=body.downgrade,
    )
    return schemas.ZoneResult(
        changed=changed, zone=schemas.ZoneOut.model_validate(zone) if zone else None
    )


@router.get("/zones/history", response_model=list[schemas.ZoneChangeOut], summary="Zone changes")
async def zone_history(
    uow: Uow,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    limit: Limit = 200,
) -> list[ZoneChange]:
    query = select(ZoneChange)
    if compound_id is not None:
        query = query.where(ZoneChange.compound_id == compound_id)
    if building_id is not None:
        query = query.where(ZoneChange.building_id == building_id)
    if unit_id is not None:
        query = query.where(ZoneChange.unit_id == unit_id)
    query = query.order_by(ZoneChange.at.desc(), ZoneChange.id.desc()).limit(limit)
    return list((await uow.session.scalars(query)).all())


@router.get(
    "/zones/counts",
    response_model=list[schemas.ZoneCount],
    summary="Buildings and units per zone level and compound",
)
async def zone_counts(uow: Uow, compound_id: uuid.UUID | None = None) -> list[schemas.ZoneCount]:
    return await service.zone_counts(uow, compound_id=compound_id)


@router.get(
    "/zones/population",
    response_model=list[schemas.Population],
    summary="Households and people per zone level, per compound, building or unit",
    description="Counts residents at the level they live under: a unit's own zone, or its "
    "building's when it has none (a sealed building's units count as sealed). One row per "
    "place and level; `level` empty for residents in no zone. Filtered by the caller's scope.",
)
async def zone_population(
    uow: Uow,
    compound_id: uuid.UUID | None = None,
    by: PopulationGrouping = "compound",
) -> list[schemas.Population]:
    return await service.population(uow, by=by, compound_id=compound_id)


@router.patch(
    "/compounds/{compound_id}/status",
    response_model=CompoundOut,
    summary="Close, reopen or declare a compound epidemic-free",
    description="Epidemic-free is a town operator's act, and only for a compound found "
    "eligible (the testing service's run of days without a positive) with no sealed building "
    "or unit: otherwise 409 naming each reason, unless `override_reason` says why it is "
    "declared anyway (recorded in `status_reason` and `registry.compound.status_changed`).",
    responses={409: {"description": "Not ready to be epidemic-free; the errors say why"}},
)
async def set_compound_status(
    compound_id: uuid.UUID, body: schemas.StatusSet, uow: Uow
) -> Compound:
    return await service.set_compound_status(
        uow,
        compound_id=compound_id,
        status=body.status,
        reason=body.reason,
        override_reason=body.override_reason,
    )


@router.get(
    "/zones/proposals",
    response_model=Page[schemas.ProposalOut],
    summary="Downgrade proposals of the zone policy",
    description="After the town's run of days (`downgrade_after_days`, 7 by default) without "
    "a positive, a sealed area is proposed controlled, and after as many more days a "
    "controlled area is proposed precaution. Nothing downgrades until an operator approves. "
    "A new case in the area supersedes its pending proposal, as does any other change of its "
    "zone; one area has at most one pending proposal.",
)
async def list_proposals(
    uow: Uow,
    status: ProposalStatus | None = None,
    compound_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.ProposalOut]:
    query = select(ZoneProposal)
    if status is not None:
        query = query.where(ZoneProposal.status == status.value)
    if compound_id is not None:
        query = query.where(ZoneProposal.compound_id == compound_id)
    found = keyset(query, ZoneProposal.id, cursor=cursor, limit=limit)
    page, following = next_cursor(list(await uow.session.scalars(found)), limit)
    return Page(items=[schemas.ProposalOut.model_validate(p) for p in page], next_cursor=following)


@router.post(
    "/zones/proposals/{proposal_id}/approve",
    response_model=schemas.ProposalOut,
    summary="Approve a downgrade: the zone changes now",
    description="Applies the proposed level, kept in the zone history and published as "
    "`registry.zone.changed`. 409 when the proposal is no longer pending.",
)
async def approve_proposal(
    proposal_id: uuid.UUID, body: schemas.ProposalDecision, uow: Uow
) -> ZoneProposal:
    return await policy.decide(uow, proposal_id=proposal_id, approve=True, note=body.note)


@router.post(
    "/zones/proposals/{proposal_id}/reject",
    response_model=schemas.ProposalOut,
    summary="Reject a downgrade: the zone stays, its clock restarts",
    description="The zone keeps its level and its run of days without a positive starts "
    "again from the rejection, so the same downgrade is proposed again after another "
    "`downgrade_after_days` without a positive. 409 when the proposal is no longer pending.",
)
async def reject_proposal(
    proposal_id: uuid.UUID, body: schemas.ProposalDecision, uow: Uow
) -> ZoneProposal:
    return await policy.decide(uow, proposal_id=proposal_id, approve=False, note=body.note)


@router.patch(
    "/towns/{town_id}/zone-policy",
    response_model=TownOut,
    summary="Choose what a case seals and how long before downgrades are proposed",
    description="Town operators only. Fields left out keep their value.",
)
async def set_zone_policy(town_id: uuid.UUID, body: schemas.TownPolicySet, uow: Uow) -> Town:
    return await policy.set_town_policy(uow, town_id=town_id, data=body)
