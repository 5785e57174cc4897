import uuid

from services.logistics.models import SERVICE
from services.logistics.recurrences import schemas, service
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page

router = service_router(SERVICE, tags=["recurring requests"])


@router.post(
    "/recurring-requests",
    status_code=201,
    response_model=schemas.RecurrenceOut,
    summary="A request that repeats on weekdays at a local time (dialysis M/W/F)",
    description="Each occurrence appears as a request of its own, the town's lead time "
    "(2 h by default) before its time, due at that time; once, however many workers run. "
    "A resident has one active series of a kind on the same weekdays at the same time on "
    "any day: a second one whose period meets the first's (entered twice) answers 409 "
    "naming the first; stop that one to enter it anew, or start the new one after it ends. "
    "A series whose `ends_on` is before today (the town office's date, `CORDON_TIME_ZONE`) "
    "would make no trip: 422 naming `ends_on`, as is an `ends_on` before `starts_on`.",
    responses={
        409: {"description": "The same series is active already (which one)"},
        422: {
            "description": "A field is invalid, e.g. `ends_on` already past or before "
            "`starts_on` (named in `errors`)"
        },
    },
)
async def create_recurrence(body: schemas.RecurrenceCreate, uow: Uow) -> schemas.RecurrenceOut:
    return service.present(uow, await service.create(uow, data=body))


@router.get(
    "/recurring-requests",
    response_model=Page[schemas.RecurrenceOut],
    summary="Recurring requests in your scope (not for volunteers: 403)",
)
async def list_recurrences(
    uow: Uow,
    resident_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.RecurrenceOut]:
    page, following = await service.page(uow, resident_id=resident_id, cursor=cursor, limit=limit)
    items = [service.present(uow, r) for r in page]
    return Page(items=items, next_cursor=following)


@router.post(
    "/recurring-requests/{recurrence_id}/stop",
    response_model=schemas.RecurrenceOut,
    summary="No further occurrences (those made stay)",
    responses={409: {"description": "It is stopped already, or ended (past `ends_on`)"}},
)
async def stop_recurrence(recurrence_id: uuid.UUID, uow: Uow) -> schemas.RecurrenceOut:
    return service.present(uow, await service.stop(uow, recurrence_id=recurrence_id))
