import uuid
from datetime import date
from typing import Annotated

from fastapi import Query, Request, Response

from services.testing.antigen import repository, schemas, service
from services.testing.models import SERVICE
from shared.http import Uow, runtime_of, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import Present
from shared.problems import rows_rejected

router = service_router(SERVICE, tags=["antigen self-tests"])


@router.post(
    "/antigen-reports",
    status_code=201,
    response_model=schemas.RecordedOut,
    summary="Report one resident's antigen self-test of a day",
    description="One report per resident and day: the same again answers 200 `unchanged`; "
    "a different one answers 200 `corrected` with what it replaced. A positive test opens a "
    "door-to-door PCR retest (`pcr_after_antigen` task). Temperature must be 34–43 °C. "
    "`reported_at` may not be in the future (beyond the clocks' tolerance) and, when `day` "
    "is given, must fall on that day on the town's clock: otherwise 422 naming it. Without "
    "`day`, the report is the town's date of `reported_at` (of now, without either): a test "
    "read at 06:30 in Shanghai is that day's, though UTC still counts the day before.",
    responses={200: {"description": "unchanged, or corrected (see previous)"}},
)
async def report_one(
    body: schemas.AntigenReportIn,
    uow: Uow,
    present: Present,
    response: Response,
    request: Request,
) -> schemas.RecordedOut:
    settings = runtime_of(request).settings
    outcome = await service.record_reports(
        uow, day=body.day, rows=[(0, body)], skew=settings.clock_skew, zone=settings.zone
    )
    if outcome.errors:
        error = outcome.errors[0]
        raise rows_rejected(
            error["message"], [{"field": error["field"], "message": error["message"]}]
        )
    recorded = outcome.recorded[0]
    if recorded.outcome != "created":
        response.status_code = 200
    [report] = await service.present(uow, [recorded.report])
    return await present(
        schemas.RecordedOut(
            **report.model_dump(),
            outcome=recorded.outcome,
            previous=recorded.previous,
            task_id=recorded.task_id,
        )
    )


@router.post(
    "/antigen-reports/batch",
    response_model=schemas.BatchOut,
    summary="A building leader's list of the day's self-tests",
    description="Each row is checked on its own (resident of this building, result, "
    "temperature 34–43 °C, reported_at not in the future and on `day` on the town's clock "
    "when `day` is given; without `day`, each row is its reported_at's date there, or "
    "today's): good rows are kept, bad ones come back by row and field. 422 when no row could "
    "be kept; 404 naming `building_id` when it is no building you see.",
    responses={
        422: {
            "model": schemas.BatchOut,
            "description": "Nothing could be recorded: the errors by row (a problem detail "
            "when the request itself is invalid)",
        }
    },
)
async def report_batch(
    body: schemas.AntigenBatchIn, uow: Uow, response: Response, request: Request
) -> schemas.BatchOut:
    rows, errors = service.parse_rows(body.reports)
    settings = runtime_of(request).settings
    outcome = await service.record_reports(
        uow,
        day=body.day,
        rows=rows,
        skew=settings.clock_skew,
        zone=settings.zone,
        building_id=body.building_id,
    )
    errors = sorted(errors + outcome.errors, key=lambda e: int(e["row"]))
    if errors and not outcome.recorded:
        response.status_code = rows_rejected("no row kept", errors).status
    return schemas.BatchOut(
        created=outcome.count("created"),
        unchanged=outcome.count("unchanged"),
        corrected=outcome.count("corrected"),
        pcr_tasks_opened=sum(1 for r in outcome.recorded if r.task_id is not None),
        errors=[schemas.BatchRowError(**e) for e in errors],
    )


@router.get(
    "/antigen-reports",
    response_model=Page[schemas.AntigenReportOut],
    summary="Self-tests by day and place",
    description="Health data: names are masked unless `reveal=true` and your role may see "
    "health data (logged); volunteers see no names.",
)
async def list_reports(
    uow: Uow,
    present: Present,
    day: date | None = None,
    building_id: uuid.UUID | None = None,
    compound_id: uuid.UUID | None = None,
    result: schemas.AntigenResult | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.AntigenReportOut]:
    page, following = await repository.reports_page(
        uow,
        day=day,
        building_id=building_id,
        compound_id=compound_id,
        result=result,
        cursor=cursor,
        limit=limit,
    )
    items = await service.present(uow, page)
    return await present(Page(items=items, next_cursor=following))


@router.get(
    "/antigen-reports/missing",
    response_model=Page[schemas.MissingResident],
    summary="Residents of a building who have not reported a self-test that day",
    description="The building leader's list to chase, for `day` or today on the town "
    "office's clock, a page at a time; phones masked unless revealed. A `building_id` that "
    "is no building you see answers 404 naming it.",
)
async def list_missing(
    uow: Uow,
    present: Present,
    request: Request,
    building_id: uuid.UUID,
    day: Annotated[
        date | None, Query(description="The day; today on the town office's clock if empty")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.MissingResident]:
    zone = runtime_of(request).settings.zone
    page = await service.missing(
        uow, building_id=building_id, day=day, zone=zone, cursor=cursor, limit=limit
    )
    return await present(page)
