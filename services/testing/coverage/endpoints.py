import uuid

from services.testing.coverage import schemas, service
from services.testing.models import SERVICE
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import Present

router = service_router(SERVICE, tags=["coverage"])


@router.get(
    "/rounds/{round_id}/coverage",
    response_model=schemas.Coverage,
    summary="Who was expected, sampled, resulted and positive, per place",
    description="Counts of the round's members in your scope, per compound, grid, building "
    "or unit (`by`), optionally within one compound or building. Each person counts once "
    "per group; `missed` is expected minus sampled.",
)
async def round_coverage(
    round_id: uuid.UUID,
    uow: Uow,
    by: schemas.Grouping = "compound",
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
) -> schemas.Coverage:
    return await service.coverage(
        uow, round_id=round_id, by=by, compound_id=compound_id, building_id=building_id
    )


@router.get(
    "/coverage/open-round",
    response_model=schemas.OpenRoundCoverage,
    summary="The open round in a compound, with its coverage by building and by unit",
    description="The open round most recently opened that has members of the compound in "
    "your scope, and its coverage there by building and by unit (as "
    "`/v1/rounds/{round_id}/coverage?by=building|unit&compound_id=` answer them), counted in "
    "one read: what a compound's page shows.",
)
async def open_round_coverage(uow: Uow, compound_id: uuid.UUID) -> schemas.OpenRoundCoverage:
    return await service.open_round_coverage(uow, compound_id=compound_id)


@router.get(
    "/rounds/{round_id}/missed",
    response_model=Page[schemas.MissedResident],
    summary="The round's members not sampled yet",
    description="Names, units, households and phones (masked unless `reveal=true` and your "
    "role may; logged) of members in your scope not sampled in this round.",
)
async def round_missed(
    round_id: uuid.UUID,
    uow: Uow,
    present: Present,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.MissedResident]:
    page = await service.missed(
        uow,
        round_id=round_id,
        compound_id=compound_id,
        building_id=building_id,
        unit_id=unit_id,
        cursor=cursor,
        limit=limit,
    )
    return await present(page)


@router.get(
    "/coverage/missed-twice",
    response_model=Page[schemas.MissedResident],
    summary="Residents missed in two consecutive rounds",
    description="Residents who were members of the last two closed PCR rounds that covered "
    "them (in the compound or building asked for) and were sampled in neither.",
)
async def missed_twice(
    uow: Uow,
    present: Present,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.MissedResident]:
    page = await service.missed_twice(
        uow,
        compound_id=compound_id,
        building_id=building_id,
        cursor=cursor,
        limit=limit,
    )
    return await present(page)
