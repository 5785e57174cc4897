import uuid
from typing import Annotated, Literal

from fastapi import Query

from services.logistics.models import SERVICE
from services.logistics.transfers import repository, schemas, service
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page

router = service_router(SERVICE, tags=["stock"])


@router.post(
    "/stock/transfers",
    status_code=201,
    response_model=schemas.TransferOut,
    summary="Dispatch goods from the town warehouse to a compound's store",
    description="Taken off the warehouse earliest expiry first; 409 naming each short item.",
    responses={409: {"description": "Not enough stock in the warehouse; nothing changed"}},
)
async def dispatch(body: schemas.TransferCreate, uow: Uow) -> schemas.TransferOut:
    return await service.out(uow, await service.dispatch(uow, data=body))


@router.post(
    "/stock/transfers/{transfer_id}/receive",
    response_model=schemas.TransferOut,
    summary="Receive a transfer at the compound: what arrived; the rest was lost in transit",
    description="Lines not named arrived whole. A line stating more than was dispatched is a "
    "422 naming `lines.N.received` (record a surplus as found, an adjustment); a transfer "
    "is received once (409 after), never before its dispatch.",
)
async def receive(
    transfer_id: uuid.UUID, body: schemas.TransferReceive, uow: Uow
) -> schemas.TransferOut:
    return await service.out(uow, await service.receive(uow, transfer_id=transfer_id, data=body))


@router.get("/stock/transfers", response_model=Page[schemas.TransferOut], summary="Transfers")
async def list_transfers(
    uow: Uow,
    to_holder_id: uuid.UUID | None = None,
    status: Annotated[Literal["dispatched", "received"] | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.TransferOut]:
    page, following = await repository.transfers_page(
        uow, to_holder_id=to_holder_id, status=status, cursor=cursor, limit=limit
    )
    return Page(items=[await service.out(uow, t) for t in page], next_cursor=following)
