import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import HTMLResponse, Response

from services.logistics.models import SERVICE, directory
from services.logistics.plans import picklist, repository, schemas, service
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page
from shared.spreadsheets import MEDIA_TYPES

router = service_router(SERVICE, tags=["distribution plans"])
# A plan's households come from the directory: it must not be behind the registry.
DirectoryCurrent = Annotated[Callable[[], Awaitable[object]], directory.caught_up()]
BEHIND: dict[int | str, dict[str, Any]] = {
    503: {"description": "The directory is behind the registry; retry after the header's seconds"}
}


@router.post(
    "/distribution-plans",
    status_code=201,
    response_model=schemas.PlanOut,
    summary="Plan a distribution to households",
    description="Allocates each line's items to every household of the scope the directory "
    "holds now, by the line's rules: `per_household`, `large_household_portions` from "
    "`large_household_size` people (6 → 2 by default; not on a line with `per_household` 0 "
    "unless the line sets them), `additions` per resident with a tag, "
    "only to households with `only_tags`. Households in sealed units or with a confirmed "
    "case are marked for door delivery. While the directory is behind the registry the "
    "request waits a few seconds, then answers 503 with Retry-After rather than a plan that "
    "misses households. 422 when nobody in the scope receives anything.",
    responses=BEHIND,
)
async def create_plan(
    body: schemas.PlanCreate, uow: Uow, directory_current: DirectoryCurrent
) -> schemas.PlanOut:
    await directory_current()
    return await service.present(uow, await service.create_plan(uow, data=body))


@router.post(
    "/distribution-plans/{plan_id}/top-ups",
    status_code=201,
    response_model=schemas.PlanOut,
    summary="Top up a plan for households registered since",
    description="A plan with the original's scope and rules that allocates only to households "
    "no plan of its family (the original and its earlier top-ups) has allocated to. 409 when "
    "the original was cancelled.",
    responses={**BEHIND, 409: {"description": "The plan was cancelled (when, by whom, why)"}},
)
async def create_top_up(
    plan_id: uuid.UUID, body: schemas.TopUpCreate, uow: Uow, directory_current: DirectoryCurrent
) -> schemas.PlanOut:
    await directory_current()
    return await service.present(uow, await service.create_top_up(uow, plan_id=plan_id, data=body))


@router.post(
    "/distribution-plans/{plan_id}/cancel",
    response_model=schemas.PlanOut,
    summary="Cancel a distribution plan",
    description="Who may make the plan may cancel it, with a reason. What is still reserved "
    "for households not delivered goes back to their stores (available again); what was "
    "delivered stays issued. The plan's `status` becomes `cancelled`, and its households not "
    "delivered are listed as `cancelled`, no longer `pending`, on its undelivered list and "
    "pick lists. Publishes `logistics.distribution.cancelled`, one per compound it covers "
    "(also where every household was delivered). A cancelled plan refuses any new delivery "
    "confirmation, top-ups and goods issued for it (`POST /v1/stock/issues`) with a 409 "
    "saying when, by whom and why. Its top-ups not cancelled yet are cancelled with it, for "
    "the same reason, and give back what they hold the same way (each announced as its own "
    "plan).",
    responses={
        409: {"description": "The plan was cancelled already (when, by whom, why)"},
    },
)
async def cancel_plan(plan_id: uuid.UUID, body: schemas.PlanCancel, uow: Uow) -> schemas.PlanOut:
    return await service.present(uow, await service.cancel_plan(uow, plan_id=plan_id, data=body))


@router.get(
    "/distribution-plans",
    response_model=Page[schemas.PlanOut],
    summary="Distribution plans in your scope",
)
async def list_plans(uow: Uow, cursor: Cursor = None, limit: Limit = 100) -> Page[schemas.PlanOut]:
    page, following = await repository.plans_page(uow, cursor=cursor, limit=limit)
    return Page(items=await service.present_all(uow, page), next_cursor=following)


@router.get("/distribution-plans/{plan_id}", response_model=schemas.PlanOut)
async def get_plan(plan_id: uuid.UUID, uow: Uow) -> schemas.PlanOut:
    return await service.present(uow, await service.get_plan(uow, plan_id))


@router.get(
    "/distribution-plans/{plan_id}/pick-list",
    summary="Pick list per building and unit (CSV, .xlsx or a printable page)",
    description="What each household receives, in building, unit and household order, with "
    "door delivery marked (sealed units, confirmed cases) and each household's `status`. "
    "`html` prints one page per building. A cancelled plan's list still prints what was "
    "delivered; every household not delivered says `cancelled`, and each printed page says "
    "when, by whom and why the plan was cancelled.",
    response_class=Response,
    responses={
        200: {
            "content": {
                MEDIA_TYPES["csv"]: {},
                MEDIA_TYPES["xlsx"]: {},
                "text/html": {},
            }
        }
    },
)
async def pick_list(
    plan_id: uuid.UUID,
    uow: Uow,
    format: Annotated[schemas.SheetOrPage, Query()] = "csv",
    building_id: uuid.UUID | None = None,
) -> Response:
    plan = await service.get_plan(uow, plan_id)
    rows = await service.pick_rows(uow, plan=plan, building_id=building_id)
    if format == "html":
        return HTMLResponse(picklist.page(plan, rows))
    content = await picklist.sheet(plan, rows, sheet_format=format)
    return Response(
        content,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="pick-list.{format}"'},
    )


@router.get(
    "/distribution-plans/{plan_id}/undelivered",
    response_model=list[schemas.UndeliveredBuilding],
    summary="Households not delivered yet, by building",
    description="Each household's `status`: `pending` (still to deliver; at the door when "
    "`door_delivery`) or `undelivered` (tried without success, `reason` says why). Once the "
    "plan is cancelled nobody is still to deliver: the households not delivered are listed "
    "as `cancelled` (an earlier failed try keeps its `reason`).",
)
async def undelivered(
    plan_id: uuid.UUID, uow: Uow, building_id: uuid.UUID | None = None
) -> list[schemas.UndeliveredBuilding]:
    return await service.undelivered(uow, plan_id=plan_id, building_id=building_id)
