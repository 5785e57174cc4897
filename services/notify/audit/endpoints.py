import uuid
from typing import Annotated

from fastapi import Query

from services.notify.audit import repository, schemas, service
from services.notify.models import SERVICE, MessageState
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit
from shared.privacy import Present

router = service_router(SERVICE, tags=["messages"])


@router.get(
    "/messages",
    response_model=schemas.SentPage,
    summary="What was sent to whom: the audit of messages in your scope",
    description="Phones are masked; `reveal=true` shows them to the roles that may see them, "
    "and every such read is logged. A message that is health data (`health_data`: a positive "
    "pool's retest) is revealed only to the roles that see health data (a leader's reveal "
    "of it is 403). A volunteer sees only the messages sent to them.",
)
async def list_messages(
    uow: Uow,
    present: Present,
    broadcast_id: uuid.UUID | None = None,
    cause_id: uuid.UUID | None = None,
    recipient_id: uuid.UUID | None = None,
    compound_id: uuid.UUID | None = None,
    state: MessageState | None = None,
    template_key: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{1,79}$")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> schemas.SentPage:
    page, following = await repository.messages_page(
        uow,
        broadcast_id=broadcast_id,
        cause_id=cause_id,
        recipient_id=recipient_id,
        compound_id=compound_id,
        state=state.value if state else None,
        template_key=template_key,
        cursor=cursor,
        limit=limit,
    )
    answer = schemas.SentPage(items=await service.shown(uow, page), next_cursor=following)
    return await present(answer)


# Before /messages/{message_id}, which would take "counts" for an id.
@router.get(
    "/messages/counts",
    response_model=list[schemas.MessageCounts],
    summary="Messages per compound in your scope, by state",
    description="One row per compound that has messages in the states asked for (`state`, "
    "repeated; by default `queued` and `failed`, the dashboard's alerts). The list behind a "
    "figure is `/v1/messages?compound_id=&state=`.",
)
async def message_counts(
    uow: Uow,
    state: Annotated[list[MessageState] | None, Query(description="Repeat for several")] = None,
) -> list[schemas.MessageCounts]:
    asked = sorted({s.value for s in state}) if state else ["failed", "queued"]
    return await service.counts(uow, states=asked)


@router.get(
    "/messages/{message_id}",
    response_model=schemas.SentMessage,
    summary="One message: its text, template version, gateway, state and cause",
)
async def get_message(message_id: uuid.UUID, uow: Uow, present: Present) -> schemas.SentMessage:
    message = await repository.message(uow, message_id)
    [shown] = await service.shown(uow, [message])
    return await present(shown)
