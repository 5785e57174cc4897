import uuid
from typing import Annotated, Any, Literal

from fastapi import Query

from services.logistics.models import SERVICE
from services.logistics.reservations import service as reservations
from services.logistics.stock import repository, schemas, service
from services.logistics.stock.quantities import of_milli
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page

router = service_router(SERVICE, tags=["stock"])
SHORT: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Not enough stock: each short item, by how much and where; nothing changed"
    }
}


@router.post(
    "/stock/receipts",
    status_code=201,
    response_model=schemas.ReceiptOut,
    summary="Record goods received at the town warehouse or a compound's store",
    description="Each line becomes a batch (with its expiry: required for perishable items). "
    "A donation names its donor; it appears in the donation register. `received_at` may be "
    "stated for goods that came earlier, never for goods still to come nor more than "
    "`CORDON_BACKDATE_DAYS` (60 by default) back, a year mistyped (422 naming it). A "
    "line expired before today (the town office's date) is a 422 naming its `expires_on`, "
    "however far back `received_at` is dated.",
)
async def receive(body: schemas.ReceiptCreate, uow: Uow) -> schemas.ReceiptOut:
    receipt, entries = await service.receive(uow, data=body)
    return schemas.ReceiptOut(
        id=receipt.id,
        holder_id=receipt.holder_id,
        source=receipt.source,
        donor=receipt.donor,
        received_at=receipt.received_at,
        entries=[schemas.EntryOut.model_validate(e) for e in entries],
    )


@router.post(
    "/stock/adjustments",
    status_code=201,
    response_model=list[schemas.EntryOut],
    summary="Adjust stock with a reason (lost, damaged, expired, found, count_correction)",
    responses=SHORT,
)
async def adjust(body: schemas.AdjustmentCreate, uow: Uow) -> list[schemas.EntryOut]:
    entries = await service.adjust(uow, data=body)
    return [schemas.EntryOut.model_validate(e) for e in entries]


@router.post(
    "/stock/counts",
    status_code=201,
    response_model=schemas.CountOut,
    summary="Record a physical count; each difference becomes an adjustment",
    responses={409: {"description": "A batch counted below what is reserved in it"}},
)
async def count(body: schemas.CountCreate, uow: Uow) -> schemas.CountOut:
    record = await service.count(uow, data=body)
    return schemas.CountOut(
        id=record.id,
        holder_id=record.holder_id,
        counted_at=record.counted_at,
        counted_by=record.counted_by,
        lines=[
            schemas.CountLineOut(
                batch_id=line["batch_id"],
                item_id=line["item_id"],
                expected=of_milli(line["expected"]),
                counted=of_milli(line["counted"]),
                difference=of_milli(line["counted"] - line["expected"]),
            )
            for line in record.lines
        ],
    )


@router.post(
    "/stock/issues",
    status_code=201,
    response_model=list[schemas.IssuedOut],
    summary="Issue goods at once, for a help request (earliest expiry first)",
    description="Reserves and issues at once, earliest expiry first; 409 naming each short "
    "item, nothing issued. The help request (or plan) named by `reference_id`, and the "
    "`building_id` the goods went to, must be ones you can see: 404 naming the field "
    "otherwise, nothing issued; a cancelled plan or help request is a 409 naming "
    "`reference_id` (when and why it was cancelled).",
    responses={
        409: {
            "description": "Not enough stock (each short item, by how much and where), or the "
            "plan or request named was cancelled; nothing changed"
        }
    },
)
async def issue(body: schemas.IssueCreate, uow: Uow) -> list[schemas.IssuedOut]:
    reference = reservations.Reference(
        kind=body.reference_kind, id=body.reference_id, label=body.reference_label
    )
    issued = await reservations.issue_now(
        uow,
        holder_id=body.holder_id,
        lines=[(line.item_id, line.quantity) for line in body.lines],
        reference=reference,
        building_id=body.building_id,
        note=body.note,
    )
    return [schemas.IssuedOut.model_validate(line, from_attributes=True) for line in issued]


@router.get(
    "/stock/balances",
    response_model=list[schemas.Balance],
    summary="Balances: on hand, reserved, available per item and holder, by batch",
)
async def balances(
    uow: Uow, holder_id: uuid.UUID | None = None, item_id: uuid.UUID | None = None
) -> list[schemas.Balance]:
    return await service.balances(uow, holder_id=holder_id, item_id=item_id)


@router.get(
    "/stock/entries",
    response_model=Page[schemas.EntryOut],
    summary="The stock card: every receipt, transfer, issue and adjustment, oldest first",
)
async def entries(
    uow: Uow,
    holder_id: uuid.UUID | None = None,
    item_id: uuid.UUID | None = None,
    kind: Annotated[
        Literal["receipt", "transfer_out", "transfer_in", "issue", "adjustment"] | None, Query()
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.EntryOut]:
    page, following = await repository.entries_page(
        uow, holder_id=holder_id, item_id=item_id, kind=kind, cursor=cursor, limit=limit
    )
    return Page(items=[schemas.EntryOut.model_validate(e) for e in page], next_cursor=following)


@router.get(
    "/stock/reservations",
    response_model=Page[schemas.ReservationOut],
    summary="Reservations: what plans and requests hold, and what they issued or released",
)
async def list_reservations(
    uow: Uow,
    holder_id: uuid.UUID | None = None,
    reference_id: uuid.UUID | None = None,
    item_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.ReservationOut]:
    page, following = await repository.reservations_page(
        uow,
        holder_id=holder_id,
        reference_id=reference_id,
        item_id=item_id,
        cursor=cursor,
        limit=limit,
    )
    return Page(
        items=[schemas.ReservationOut.model_validate(r) for r in page], next_cursor=following
    )
