import uuid
from datetime import UTC, datetime
from typing import Annotated
from weakref import WeakKeyDictionary

from fastapi import Query, Request, Response

from services.logistics.models import SERVICE, HelpRequest, RequestSettings
from services.logistics.requests import repository, schemas, service
from shared.contracts.logistics import Priority, RequestKind, RequestStatus
from shared.fields import Moment
from shared.http import Uow, keyed_write, ready_json, runtime_of, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import Present
from shared.service import ServiceRuntime

router = service_router(SERVICE, tags=["help requests"])
# Creations arriving together share a transaction: one desk per running service.
_desks: WeakKeyDictionary[ServiceRuntime, service.RequestDesk] = WeakKeyDictionary()


async def _one(uow: Uow, present: Present, request: HelpRequest) -> schemas.RequestOut:
    return await present((await service.present_all(uow, [request]))[0])


@router.post(
    "/requests",
    status_code=201,
    response_model=schemas.RequestOut,
    summary="Enter a resident's help request",
    description="The priority comes from the kind and the resident's tags (an infant's "
    "formula and an emergency transport are urgent; dialysis, pregnancy, an infant, living "
    "alone or a disability raise it) and the due time from the town's target for it (urgent "
    "1 h, high 4 h, normal 24 h unless the town set others). Send an `Idempotency-Key`.",
)
async def create_request(
    body: schemas.RequestCreate, uow: Uow, present: Present, request: Request
) -> Response:
    async def render(created: schemas.RequestOut) -> Response:
        # Built from what the create knows, masked by the presenter, serialised once.
        return ready_json(await present(created), status=201)

    if present.reveal:
        # A reveal is logged in the transaction of the creation it shows.
        return await render(await service.create(uow, data=body))
    runtime = runtime_of(request)
    desk = _desks.get(runtime) or _desks.setdefault(
        runtime, service.RequestDesk(runtime.uow, answers=runtime.spec.kernel.idempotency)
    )
    keyed = await keyed_write(request, uow.principal)
    shown = await desk.create(uow, data=body, render=render, keyed=keyed)
    assert isinstance(shown, Response)
    return shown


@router.get(
    "/requests",
    response_model=Page[schemas.RequestOut],
    summary="Help requests in your scope (a volunteer: their own errands)",
    description="`overdue=true` lists the open ones past their due time. Phones are masked "
    "unless `reveal=true` and your role may see them (every such read is logged).",
)
async def list_requests(
    uow: Uow,
    present: Present,
    status: RequestStatus | None = None,
    kind: RequestKind | None = None,
    priority: Priority | None = None,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    resident_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    overdue: Annotated[bool | None, Query(description="Open and past the due time")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.RequestOut]:
    filters = repository.RequestFilters(
        status=status,
        kind=kind,
        priority=priority,
        compound_id=compound_id,
        building_id=building_id,
        resident_id=resident_id,
        assignee_id=assignee_id,
        overdue=overdue,
    )
    page, following = await repository.requests_page(
        uow, filters=filters, now=datetime.now(UTC), cursor=cursor, limit=limit
    )
    items = await service.present_all(uow, page)
    return await present(Page(items=items, next_cursor=following))


# Before /requests/{request_id}, which would take "counts" for an id.
@router.get(
    "/requests/counts",
    response_model=list[schemas.RequestCounts],
    summary="Requests still to run and overdue, per compound in your scope",
    description="One row per compound that has a request open, assigned or in progress: how "
    "many, and how many of them are past their due time (the list behind that figure: "
    "`/v1/requests?compound_id=&overdue=true`).",
)
async def request_counts(uow: Uow) -> list[schemas.RequestCounts]:
    return await service.counts(uow, now=datetime.now(UTC))


@router.get("/requests/{request_id}", response_model=schemas.RequestOut)
async def get_request(request_id: uuid.UUID, uow: Uow, present: Present) -> schemas.RequestOut:
    return await _one(uow, present, await service.get(uow, request_id))


@router.get(
    "/requests/{request_id}/suggestions",
    response_model=list[schemas.Suggestion],
    summary="Volunteers to give the errand to, best first",
    description="Volunteers assigned to the request's building, a grid over it or its whole "
    "compound; with a skill the kind needs (a transport: driving); available at `at` (now) "
    'by their availability in the town\'s time (`""` or `any time`/`全天`; else days, a time '
    "range or both, as `mon-fri 08:00-18:00; sat`, `00:00-24:00`, `weekdays mornings`, "
    "`evenings and weekends`, `晚上、周末`; mornings 06-12, afternoons 12-18, evenings 18-22, "
    "nights 22-06); availability in no such words is never matched; fewest open errands first.",
)
async def suggest(
    request_id: uuid.UUID,
    uow: Uow,
    present: Present,
    at: Annotated[Moment | None, Query(description="When the errand would run")] = None,
) -> list[schemas.Suggestion]:
    return await present(await service.suggest(uow, request_id=request_id, at=at))


@router.post(
    "/requests/{request_id}/assign",
    response_model=schemas.RequestOut,
    summary="Give the request to a volunteer or a team (again to reassign)",
    description="A volunteer must be assigned now to the request's building, a grid over it "
    "or its compound (the suggestions' candidates): anyone else would never see the errand, "
    "and is refused with a 422 naming `volunteer_id`.",
)
async def assign(
    request_id: uuid.UUID, body: schemas.Assign, uow: Uow, present: Present
) -> schemas.RequestOut:
    return await _one(uow, present, await service.assign(uow, request_id=request_id, data=body))


CARD_FIRST = (
    "A medicine run whose insurance card is still out (collected, with the volunteer, or at "
    "the hospital) answers 409 naming `card.status`: record the card returned to the "
    "resident first (`POST /v1/requests/{id}/card`), then {act}."
)
# The steps that finish or call off an errand: a medicine run's card must be back first.
FINISH = {
    "done": CARD_FIRST.replace("{act}", "mark it done"),
    "confirm": CARD_FIRST.replace("{act}", "close it"),
}


def _action(action: str, summary: str) -> None:
    async def act(request_id: uuid.UUID, uow: Uow, present: Present) -> schemas.RequestOut:
        request = await service.move(uow, request_id=request_id, action=action)
        return await _one(uow, present, request)

    act.__name__ = f"{action}_request"
    router.post(
        f"/requests/{{request_id}}/{action}",
        response_model=schemas.RequestOut,
        summary=summary,
        description="A request not in the state this step needs answers 409 naming its state. "
        + FINISH.get(action, ""),
        name=act.__name__,
    )(act)


_action("start", "The errand is under way (assigned → in_progress)")
_action("done", "The errand is done (in_progress → done)")
_action("confirm", "The resident confirms, through their building leader (done → closed)")


@router.post(
    "/requests/{request_id}/cancel",
    response_model=schemas.RequestOut,
    summary="Cancel a request that is not done, with the reason",
    description="A request done, closed or cancelled already answers 409 naming its state. "
    + CARD_FIRST.replace("{act}", "cancel it: cancelling does not record a return nobody made"),
)
async def cancel(
    request_id: uuid.UUID, body: schemas.Cancel, uow: Uow, present: Present
) -> schemas.RequestOut:
    request = await service.move(uow, request_id=request_id, action="cancel", reason=body.reason)
    return await _one(uow, present, request)


@router.get(
    "/request-settings/{town_id}",
    response_model=schemas.SettingsOut,
    summary="A town's service-time targets and timers (its defaults until set)",
)
async def get_settings(town_id: uuid.UUID, uow: Uow) -> schemas.SettingsOut:
    return _settings(await service.read_settings(uow, town_id=town_id))


@router.put(
    "/request-settings/{town_id}",
    response_model=schemas.SettingsOut,
    summary="Set a town's service-time targets and timers (town operators)",
    description="Applies to requests entered from now on; those entered keep their due time.",
)
async def put_settings(
    town_id: uuid.UUID, body: schemas.SettingsIn, uow: Uow
) -> schemas.SettingsOut:
    return _settings(await service.set_settings(uow, town_id=town_id, data=body))


def _settings(row: RequestSettings) -> schemas.SettingsOut:
    fields = {name: getattr(row, name) for name in schemas.SettingsIn.model_fields}
    return schemas.SettingsOut.model_validate({**fields, "town_id": row.id})
