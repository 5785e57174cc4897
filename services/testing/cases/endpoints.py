import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Query

from services.testing.cases import repository, schemas, service
from services.testing.models import SERVICE, Case
from shared.fields import Moment
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page
from shared.privacy import Present

router = service_router(SERVICE, tags=["cases"])

TransferStatusName = Literal["pending", "scheduled", "transferred"]


async def _page(
    uow: Uow, present: Present, page: list[Case], following: str | None
) -> Page[schemas.CaseOut]:
    items = await service.present_all(uow, page)
    return await present(Page(items=items, next_cursor=following))


@router.get(
    "/cases",
    response_model=Page[schemas.CaseOut],
    summary="Confirmed cases in your scope",
    description="Names, phones and ID numbers are masked unless `reveal=true` and your role "
    "may see health data (every such read is logged); volunteers see no identity.",
)
async def list_cases(
    uow: Uow,
    present: Present,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    round_id: uuid.UUID | None = None,
    resident_id: uuid.UUID | None = None,
    confirmed_since: Annotated[
        Moment | None, Query(description="Only cases confirmed at or after this instant")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.CaseOut]:
    page, following = await repository.cases_page(
        uow,
        compound_id=compound_id,
        building_id=building_id,
        round_id=round_id,
        resident_id=resident_id,
        confirmed_since=confirmed_since,
        cursor=cursor,
        limit=limit,
    )
    return await _page(uow, present, page, following)


@router.get(
    "/cases/counts",
    response_model=list[schemas.CaseCounts],
    summary="Cases and the transfer queue per compound, counted",
    description="One row per compound in your scope that has a case: cases ever and since "
    "`since` (pass the start of today in the town's time zone for *cases today*), transfers "
    "pending, scheduled and overdue. The lists behind each figure are `/v1/cases` "
    "(`confirmed_since`) and `/v1/transfers` (`status`, `overdue`).",
)
async def case_counts(
    uow: Uow,
    since: Annotated[Moment, Query(description="Count `cases_since` from this instant")],
    compound_id: uuid.UUID | None = None,
) -> list[schemas.CaseCounts]:
    return await service.counts(uow, since=since, now=datetime.now(UTC), compound_id=compound_id)


@router.get("/cases/{case_id}", response_model=schemas.CaseOut)
async def get_case(case_id: uuid.UUID, uow: Uow, present: Present) -> schemas.CaseOut:
    case = await service.get_case(uow, case_id)
    return await present((await service.present_all(uow, [case]))[0])


@router.get(
    "/cases/{case_id}/contacts",
    response_model=list[schemas.ContactOut],
    summary="A case's close and secondary contacts, each with its quarantine end",
)
async def list_contacts(
    case_id: uuid.UUID,
    uow: Uow,
    present: Present,
    kind: schemas.ContactKind | None = None,
) -> list[schemas.ContactOut]:
    await service.get_case(uow, case_id)
    contacts = await repository.contacts_of(uow, case_id, kind=kind)
    return await present(await service.present_contacts(uow, contacts))


@router.post(
    "/cases/{case_id}/contacts",
    status_code=201,
    response_model=schemas.ContactOut,
    summary="Add a contact found by tracing",
    description="A resident of the directory (`resident_id`) or an outsider by name and "
    "phone. The quarantine end defaults to the town policy's for the kind, and is never "
    "before the case was confirmed (422). A resident, or an outsider by the same name and "
    "phone, listed already answers 409.",
)
async def add_contact(
    case_id: uuid.UUID,
    body: schemas.ContactIn,
    uow: Uow,
    present: Present,
) -> schemas.ContactOut:
    contact = await service.add_contact(uow, case_id=case_id, data=body)
    return await present((await service.present_contacts(uow, [contact]))[0])


@router.post(
    "/cases/{case_id}/transfer",
    response_model=schemas.CaseOut,
    summary="Move a case along the transfer queue",
    description="pending → scheduled (destination and time) → transferred. Scheduling again "
    "reschedules; pending again cancels the schedule. Any other step answers 409.",
)
async def move_transfer(
    case_id: uuid.UUID,
    body: schemas.TransferIn,
    uow: Uow,
    present: Present,
) -> schemas.CaseOut:
    case = await service.move_transfer(uow, case_id=case_id, data=body)
    return await present((await service.present_all(uow, [case]))[0])


@router.get(
    "/transfers",
    response_model=Page[schemas.CaseOut],
    summary="The transfer queue: cases by transfer status; `overdue=true` for the late ones",
)
async def list_transfers(
    uow: Uow,
    present: Present,
    status: TransferStatusName | None = None,
    overdue: Annotated[
        bool | None, Query(description="Only cases past their target and not transferred")
    ] = None,
    compound_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.CaseOut]:
    page, following = await repository.transfers_page(
        uow,
        status=status,
        overdue=overdue,
        compound_id=compound_id,
        now=datetime.now(UTC),
        cursor=cursor,
        limit=limit,
    )
    return await _page(uow, present, page, following)
