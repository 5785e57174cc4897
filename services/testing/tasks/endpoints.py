import uuid
from typing import Literal

from sqlalchemy import select

from services.testing import identity
from services.testing.models import SERVICE, Task
from services.testing.tasks import schemas
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page, keyset, next_cursor, where_given
from shared.privacy import Present

router = service_router(SERVICE, tags=["tasks"])


@router.get(
    "/tasks",
    response_model=Page[schemas.TaskOut],
    summary="Samplers' lists: retests, resamples and PCR retests after a positive antigen",
    description="Health data, like results: names, phones are masked unless `reveal=true` "
    "and your role may see health data (logged); volunteers see no identity. A single retest "
    "tube recorded with `retest: true` closes the resident's open task.",
)
async def list_tasks(
    uow: Uow,
    present: Present,
    kind: schemas.TaskKindName | None = None,
    status: Literal["open", "done"] | None = None,
    round_id: uuid.UUID | None = None,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.TaskOut]:
    query = where_given(
        select(Task),
        (Task.kind, kind),
        (Task.status, status),
        (Task.round_id, round_id),
        (Task.compound_id, compound_id),
        (Task.building_id, building_id),
    )
    rows = list(await uow.session.scalars(keyset(query, Task.id, cursor=cursor, limit=limit)))
    page, following = next_cursor(rows, limit)
    people = await identity.residents(uow, [t.resident_id for t in page])
    items = []
    for task in page:
        person = people.get(task.resident_id)
        items.append(
            schemas.TaskOut(
                id=task.id,
                kind=task.kind,
                status=task.status,
                resident_id=task.resident_id,
                name=person.name if person else None,
                phone=person.phone if person else None,
                round_id=task.round_id,
                compound_id=task.compound_id,
                building_id=task.building_id,
                unit_id=task.unit_id,
                door_to_door=task.door_to_door,
                cause_id=task.cause_id,
                created_at=task.created_at,
                done_at=task.done_at,
                done_tube_id=task.done_tube_id,
            )
        )
    return await present(Page(items=items, next_cursor=following))
