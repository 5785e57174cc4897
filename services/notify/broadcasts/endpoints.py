import uuid
from typing import Annotated

from fastapi import Query

from services.notify.broadcasts import repository, schemas, service
from services.notify.models import SERVICE
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page

router = service_router(SERVICE, tags=["broadcasts"])


@router.post(
    "/broadcasts",
    status_code=201,
    response_model=schemas.BroadcastOut,
    summary="Send a message to everyone in a scope",
    description="Committee staff send to their compounds; a town-wide scope (the town, or a "
    "zone level or tag across it) is for town operators and waits for a second operator's "
    "approval. A missing or mistyped variable, a send time after `valid_until`, a named "
    "resident without a mobile phone, or a scope that selects no resident (422 naming the "
    "field that selected nobody: `scope.tag`, `scope.zone_level`, `scope.ids`) is refused and "
    "nothing is created. Up to "
    f"{service.INLINE_LIMIT:,} recipients are enqueued at once; more are enqueued in batches "
    "in the background (see `progress`).",
    responses={
        422: {"description": "Invalid, or the scope selects no resident: `errors` names the field"}
    },
)
async def create_broadcast(body: schemas.BroadcastCreate, uow: Uow) -> schemas.BroadcastOut:
    return await service.out(uow, await service.create(uow, data=body))


@router.post(
    "/broadcasts/preview",
    response_model=schemas.BroadcastPreview,
    summary="Whom a broadcast would reach and what it would cost; nothing is sent",
)
async def preview_broadcast(body: schemas.BroadcastCreate, uow: Uow) -> schemas.BroadcastPreview:
    return await service.preview(uow, data=body)


@router.get(
    "/broadcasts", response_model=Page[schemas.BroadcastOut], summary="Broadcasts in your scope"
)
async def list_broadcasts(
    uow: Uow,
    status: Annotated[
        str | None,
        Query(pattern="^(awaiting_approval|enqueuing|enqueued|cancelled|superseded)$"),
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[schemas.BroadcastOut]:
    page, following = await repository.broadcasts_page(
        uow, status=status, cursor=cursor, limit=limit
    )
    return Page(items=await service.out_all(uow, page), next_cursor=following)


@router.get(
    "/broadcasts/{broadcast_id}",
    response_model=schemas.BroadcastOut,
    summary="A broadcast and its progress: its messages by state",
)
async def get_broadcast(broadcast_id: uuid.UUID, uow: Uow) -> schemas.BroadcastOut:
    return await service.out(uow, await service.get(uow, broadcast_id))


@router.post(
    "/broadcasts/{broadcast_id}/approve",
    response_model=schemas.BroadcastOut,
    summary="Approve a town-wide broadcast (a town operator other than its creator)",
)
async def approve_broadcast(broadcast_id: uuid.UUID, uow: Uow) -> schemas.BroadcastOut:
    return await service.out(uow, await service.approve(uow, broadcast_id=broadcast_id))


@router.post(
    "/broadcasts/{broadcast_id}/cancel",
    response_model=schemas.BroadcastOut,
    summary="Cancel a broadcast: what was not yet handed to a gateway is not sent",
)
async def cancel_broadcast(broadcast_id: uuid.UUID, uow: Uow) -> schemas.BroadcastOut:
    return await service.out(uow, await service.cancel(uow, broadcast_id=broadcast_id))
