import uuid
from typing import Annotated
from weakref import WeakKeyDictionary

from fastapi import Path, Query, Request, Response

from services.testing.models import SERVICE, Tube
from services.testing.rounds.service import get_round
from services.testing.tubes import repository, schemas, service
from services.testing.tubes.service import TubeRow
from shared.http import Uow, keyed_write, ready_json, runtime_of, service_router
from shared.pagination import Cursor, Limit, Page
from shared.problems import NotFound, rows_rejected
from shared.service import ServiceRuntime

router = service_router(SERVICE, tags=["tubes"])
# Single tubes arriving together share a transaction: one desk per running service.
_desks: WeakKeyDictionary[ServiceRuntime, service.TubeDesk] = WeakKeyDictionary()


async def _out(uow: Uow, tubes: list[Tube]) -> list[schemas.TubeOut]:
    members = await service.members_of(uow, [t.id for t in tubes])
    return [
        schemas.TubeOut.model_validate(t).model_copy(update={"member_ids": members[t.id]})
        for t in tubes
    ]


@router.post(
    "/rounds/{round_id}/tubes",
    status_code=201,
    response_model=schemas.TubeOut,
    summary="Record one sampled tube",
    description="A pool (up to the round's pool size) or a single tube. Refused with a "
    "problem naming the field: a tube code used before, a resident outside the round, "
    "already sampled (unless `retest` for an open retest, resample or PCR after a positive "
    "antigen test), a sealed-area resident in a pool, a `collected_at` in the future or "
    "outside the round's window, a retest or resample collected before the result that "
    "asked for it (each time with the tolerance `CORDON_CLOCK_SKEW_MINUTES`, 10 by default, "
    "for the phone's clock). Sending the same tube again answers it unchanged.",
)
async def record_tube(
    round_id: uuid.UUID, body: schemas.TubeIn, uow: Uow, request: Request
) -> Response:
    def render(tube: Tube | TubeRow) -> Response:
        # Recorded now or before with these very members: no need to read them back.
        answer = schemas.TubeOut.model_validate(tube).model_copy(
            update={"member_ids": body.member_ids}
        )
        return ready_json(answer, status=201)

    runtime = runtime_of(request)
    desk = _desks.get(runtime) or _desks.setdefault(
        runtime, service.TubeDesk(runtime.uow, answers=runtime.spec.kernel.idempotency)
    )
    shown = await desk.record(
        uow,
        round_id=round_id,
        tube=body,
        skew=runtime.settings.clock_skew,
        render=render,
        keyed=await keyed_write(request, uow.principal),
    )
    assert isinstance(shown, Response)
    return shown


@router.post(
    "/rounds/{round_id}/tubes/batch",
    response_model=schemas.BatchOut,
    summary="Record a batch of tubes recorded offline",
    description="Each tube is checked on its own: the good ones are recorded, the bad ones "
    "come back by row with the field and the reason. Resending a batch records nothing "
    "twice. 422 when no tube could be recorded.",
    responses={
        422: {
            "model": schemas.BatchOut,
            "description": "Nothing could be recorded: the errors by row (a problem detail "
            "when the request itself is invalid)",
        }
    },
)
async def record_batch(
    round_id: uuid.UUID, body: schemas.TubeBatch, uow: Uow, request: Request, response: Response
) -> schemas.BatchOut:
    skew = runtime_of(request).settings.clock_skew
    outcome = await service.record_tubes(uow, round_id=round_id, tubes=body.tubes, skew=skew)
    if outcome.errors and not (outcome.accepted or outcome.unchanged):
        response.status_code = rows_rejected("no tube recorded", outcome.errors).status
    return schemas.BatchOut(
        accepted=len(outcome.accepted),
        unchanged=len(outcome.unchanged),
        errors=[schemas.RowError(**e) for e in outcome.errors],
    )


@router.get("/rounds/{round_id}/tubes", response_model=Page[schemas.TubeOut])
async def list_tubes(
    round_id: uuid.UUID,
    uow: Uow,
    status: Annotated[str | None, Query(pattern="^(collected|negative|positive|invalid)$")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.TubeOut]:
    await get_round(uow, round_id)
    page, following = await repository.tubes_page(
        uow, round_id=round_id, status=status, cursor=cursor, limit=limit
    )
    return Page(items=await _out(uow, page), next_cursor=following)


@router.get("/tubes/{code}", response_model=schemas.TubeOut, summary="A tube by its code")
async def get_tube(
    code: Annotated[schemas.TubeCode, Path(description="In either case")], uow: Uow
) -> schemas.TubeOut:
    tube = await repository.tube_by_code(uow, code)
    if tube is None:
        raise NotFound(f"no tube {code} in your scope")
    return (await _out(uow, [tube]))[0]
