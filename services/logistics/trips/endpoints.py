import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from services.logistics.models import SERVICE
from services.logistics.requests import schemas as request_schemas
from services.logistics.requests import service as requests
from services.logistics.trips import repository, schemas, service
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import Present

router = service_router(SERVICE, tags=["medicine runs"])


@router.post(
    "/requests/{request_id}/card",
    response_model=request_schemas.RequestOut,
    summary="The insurance card of a medicine run changes hands",
    description="collected (the run's label is made) → at_hospital → returned to the "
    "resident, in that order (collected → returned when the run is called off before the "
    "hospital); any other step answers 409 naming where the card is. A run done, closed "
    "or cancelled takes no card out (409 naming `status`); one out is always taken back.",
)
async def card_step(
    request_id: uuid.UUID, body: request_schemas.CardStep, uow: Uow, present: Present
) -> request_schemas.RequestOut:
    request = await service.card_step(uow, request_id=request_id, status=body.status)
    return await present((await requests.present_all(uow, [request]))[0])


@router.get(
    "/cards",
    response_model=Page[request_schemas.RequestOut],
    summary="Medicine runs whose card is out (`overdue=true`: past its return time)",
)
async def list_cards(
    uow: Uow,
    present: Present,
    overdue: Annotated[bool | None, Query(description="Not back by its due time")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[request_schemas.RequestOut]:
    page, following = await repository.cards_page(
        uow, overdue=overdue, now=datetime.now(UTC), cursor=cursor, limit=limit
    )
    items = await requests.present_all(uow, page)
    return await present(Page(items=items, next_cursor=following))


@router.post(
    "/trips",
    status_code=201,
    response_model=list[schemas.TripOut],
    summary="Group the medicine runs not on a trip yet into one trip per hospital",
    description="The runs in your scope (a building leader: their buildings'). `compound_id` "
    "narrows them to a compound you see (404 naming it otherwise), `hospital` to the runs to "
    "it.",
)
async def plan_trips(body: schemas.TripPlan, uow: Uow) -> list[schemas.TripOut]:
    return await service.present_trips(uow, await service.plan_trips(uow, data=body))


@router.get(
    "/trips",
    response_model=Page[schemas.TripOut],
    summary="Trips in your scope (a volunteer: those with their own errands, and only those runs)",
)
async def list_trips(uow: Uow, cursor: Cursor = None, limit: Limit = 100) -> Page[schemas.TripOut]:
    page, following = await repository.trips_page(uow, cursor=cursor, limit=limit)
    return Page(items=await service.present_trips(uow, page), next_cursor=following)


@router.get("/trips/{trip_id}", response_model=schemas.TripOut)
async def get_trip(trip_id: uuid.UUID, uow: Uow) -> schemas.TripOut:
    return (await service.present_trips(uow, [await service.get_trip(uow, trip_id)]))[0]
