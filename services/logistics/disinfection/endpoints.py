import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from services.logistics.disinfection import repository, schemas, service
from services.logistics.models import (
    SERVICE,
    DisinfectionDefaults,
    DisinfectionSchedule,
    DisinfectionTask,
)
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page

router = service_router(SERVICE, tags=["disinfection"])
Status = Annotated[str | None, Query(pattern="^(pending|done|missed)$")]


def _defaults_out(defaults: DisinfectionDefaults) -> schemas.DefaultsOut:
    return schemas.DefaultsOut.model_validate(defaults)


@router.get(
    "/disinfection-defaults/{town_id}",
    response_model=schemas.DefaultsOut,
    summary="A town's disinfection defaults (the built-in ones until the town sets its own)",
)
async def get_defaults(town_id: uuid.UUID, uow: Uow) -> schemas.DefaultsOut:
    return _defaults_out(await service.read_defaults(uow, town_id=town_id))


@router.put(
    "/disinfection-defaults/{town_id}",
    response_model=schemas.DefaultsOut,
    summary="Set a town's disinfection defaults",
    description="Times a day per target, the sealed and stairwell frequencies, the hours the "
    "day's slots span and the town's time zone. Schedules follow from their next day of "
    "tasks. Town operators only.",
)
async def put_defaults(
    town_id: uuid.UUID, body: schemas.DefaultsIn, uow: Uow
) -> schemas.DefaultsOut:
    return _defaults_out(await service.set_defaults(uow, town_id=town_id, data=body))


@router.post(
    "/disinfection-schedules",
    status_code=201,
    response_model=schemas.ScheduleOut,
    summary="Schedule the disinfection of a building, lift, sampling site, unit or stairwell",
    description="Times a day default to the town's for the target and rise to its sealed "
    "frequency while the area is sealed. Tasks are made per slot of the town day.",
)
async def create_schedule(body: schemas.ScheduleCreate, uow: Uow) -> DisinfectionSchedule:
    return await service.create_schedule(uow, data=body, now=datetime.now(UTC))


@router.get(
    "/disinfection-schedules",
    response_model=Page[schemas.ScheduleOut],
    summary="Disinfection schedules in your scope",
)
async def list_schedules(
    uow: Uow,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    active: bool | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.ScheduleOut]:
    page, following = await repository.schedules_page(
        uow,
        compound_id=compound_id,
        building_id=building_id,
        active=active,
        cursor=cursor,
        limit=limit,
    )
    items = [schemas.ScheduleOut.model_validate(s) for s in page]
    return Page(items=items, next_cursor=following)


@router.get("/disinfection-schedules/{schedule_id}", response_model=schemas.ScheduleOut)
async def get_schedule(schedule_id: uuid.UUID, uow: Uow) -> DisinfectionSchedule:
    return await service.get_schedule(uow, schedule_id)


@router.patch(
    "/disinfection-schedules/{schedule_id}",
    response_model=schemas.ScheduleOut,
    summary="Change a schedule's frequency, label or who answers for it, or end it",
    description="Pending tasks not yet due are replaced by the new frequency's slots.",
)
async def change_schedule(
    schedule_id: uuid.UUID, body: schemas.ScheduleChange, uow: Uow
) -> DisinfectionSchedule:
    return await service.change_schedule(
        uow, schedule_id=schedule_id, data=body, now=datetime.now(UTC)
    )


@router.get(
    "/disinfection-tasks",
    response_model=Page[schemas.TaskOut],
    summary="Disinfection tasks in your scope",
)
async def list_tasks(
    uow: Uow,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    schedule_id: uuid.UUID | None = None,
    status: Status = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.TaskOut]:
    page, following = await repository.tasks_page(
        uow,
        compound_id=compound_id,
        building_id=building_id,
        schedule_id=schedule_id,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    items = [schemas.TaskOut.model_validate(t) for t in page]
    return Page(items=items, next_cursor=following)


@router.get(
    "/disinfection-tasks/missed",
    response_model=list[schemas.MissedGroup],
    summary="Missed disinfection tasks, per compound and building",
    description="Every task whose slot passed without completion, including those done late "
    "since (``done_at`` set).",
)
async def missed_tasks(
    uow: Uow, compound_id: uuid.UUID | None = None, building_id: uuid.UUID | None = None
) -> list[schemas.MissedGroup]:
    return await service.missed_by_building(uow, compound_id=compound_id, building_id=building_id)


@router.get("/disinfection-tasks/{task_id}", response_model=schemas.TaskOut)
async def get_task(task_id: uuid.UUID, uow: Uow) -> DisinfectionTask:
    return await uow.get(DisinfectionTask, task_id, what="disinfection task")


@router.post(
    "/disinfection-tasks/{task_id}/complete",
    response_model=schemas.TaskOut,
    summary="Record a disinfection task as done",
    description="Who did it, when, with an optional note and photo reference. `done_at` "
    "ahead of the server's clock, or before the task's slot began, by more than the clock "
    "tolerance (`CORDON_CLOCK_SKEW_MINUTES`, 10) is refused (422 naming `done_at`). A task "
    "done already stays as first recorded: the same completion resent by the same account "
    "gets the same answer, any other 409. A missed one may be done late.",
    responses={409: {"description": "Done already, otherwise: when and by whom"}},
)
async def complete_task(
    task_id: uuid.UUID, body: schemas.CompletionIn, uow: Uow
) -> DisinfectionTask:
    return await service.complete(uow, task_id=task_id, data=body, now=datetime.now(UTC))
