import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Query

from services.testing.models import SERVICE, directory
from services.testing.rounds import repository, schemas, service
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import Present

router = service_router(SERVICE, tags=["rounds"])
# A round's members come from the directory: it must not be behind the registry.
DirectoryCurrent = Annotated[Callable[[], Awaitable[object]], directory.caught_up()]
BEHIND: dict[int | str, dict[str, Any]] = {
    503: {"description": "The directory is behind the registry; retry after the header's seconds"}
}


@router.post(
    "/rounds",
    status_code=201,
    response_model=schemas.RoundOut,
    summary="Schedule a screening round",
    description="The round's members are the residents its scope covers in the testing "
    "directory now; they are brought up to date when the round opens. While the directory is "
    "behind the registry (a ledger just imported) the request waits a few seconds for it, "
    "then answers 503 with Retry-After rather than a round that misses people.",
    responses=BEHIND,
)
async def schedule_round(
    body: schemas.RoundCreate, uow: Uow, directory_current: DirectoryCurrent
) -> schemas.RoundOut:
    await directory_current()
    round_, expected = await service.schedule_round(uow, data=body)
    return await service.present(uow, round_, expected=expected)


@router.get("/rounds", response_model=Page[schemas.RoundOut], summary="Rounds in your scope")
async def list_rounds(
    uow: Uow,
    status: Annotated[str | None, Query(pattern="^(scheduled|open|closed)$")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.RoundOut]:
    page, following = await repository.rounds_page(uow, status=status, cursor=cursor, limit=limit)
    counts = await repository.member_counts(uow, [r.id for r in page])
    items = await service.present_all(uow, page, expected=counts)
    return Page(items=items, next_cursor=following)


@router.get("/rounds/{round_id}", response_model=schemas.RoundOut)
async def get_round(round_id: uuid.UUID, uow: Uow) -> schemas.RoundOut:
    round_ = await service.get_round(uow, round_id)
    return await service.present(uow, round_, expected=await service.expected(uow, round_id))


@router.post(
    "/rounds/{round_id}/open",
    response_model=schemas.RoundOut,
    summary="Start sampling",
    responses=BEHIND,
)
async def open_round(
    round_id: uuid.UUID, uow: Uow, directory_current: DirectoryCurrent
) -> schemas.RoundOut:
    await directory_current()
    round_ = await service.open_round(uow, round_id=round_id)
    return await service.present(uow, round_, expected=await service.expected(uow, round_id))


@router.post("/rounds/{round_id}/close", response_model=schemas.RoundOut, summary="End sampling")
async def close_round(round_id: uuid.UUID, uow: Uow) -> schemas.RoundOut:
    round_ = await service.close_round(uow, round_id=round_id)
    return await service.present(uow, round_, expected=await service.expected(uow, round_id))


@router.post(
    "/rounds/{round_id}/sites",
    status_code=201,
    response_model=schemas.SiteOut,
    summary="Add a sampling site to a round",
    description="A site in a compound with people in the round, serving some of its "
    "buildings, with time slots inside the round's window (each ending after it starts). "
    "Refused with a problem naming the field otherwise.",
)
async def create_site(round_id: uuid.UUID, body: schemas.SiteCreate, uow: Uow) -> schemas.SiteOut:
    site = await service.create_site(uow, round_id=round_id, data=body)
    [shown] = await service.present_sites(uow, [site])
    return shown


@router.get("/rounds/{round_id}/sites", response_model=list[schemas.SiteOut])
async def list_sites(round_id: uuid.UUID, uow: Uow) -> list[schemas.SiteOut]:
    await service.get_round(uow, round_id)
    return await service.present_sites(uow, await repository.sites_of(uow, round_id))


@router.get(
    "/rounds/{round_id}/door-to-door",
    response_model=list[schemas.DoorToDoorBuilding],
    summary="Residents to sample at their door, by building",
    description="Residents of sealed units or buildings, the bedridden and disabled, and "
    "everyone with an open retest or resample: the building leader's list.",
)
async def door_to_door(
    round_id: uuid.UUID,
    uow: Uow,
    present: Present,
    building_id: uuid.UUID | None = None,
) -> list[schemas.DoorToDoorBuilding]:
    return await present(
        await service.door_to_door(uow, round_id=round_id, building_id=building_id)
    )
