import uuid
from typing import Any

from services.logistics.deliveries import schemas, service
from services.logistics.models import SERVICE
from shared.http import Uow, service_router

router = service_router(SERVICE, tags=["deliveries"])
CANCELLED: dict[int | str, dict[str, Any]] = {
    409: {"description": "The plan was cancelled: when, by whom and why"}
}


@router.post(
    "/distribution-plans/{plan_id}/deliveries",
    response_model=schemas.DeliveryResult,
    summary="Confirm deliveries to households (one or many, recorded offline)",
    description="Each confirmation is checked on its own: delivered (received by whom, "
    "optionally a photo reference or the code the household read out) or not delivered with "
    "a reason (`unit_sealed` puts the household on door delivery, pending). A confirmation "
    "whose `client_ref` was received before changes nothing, so a phone may resend what it "
    "is unsure of. Bad rows come back by row (an `at` in the future or before the plan was "
    "made, beyond the clocks' tolerance, is one); 422 (404 when every row named something "
    "outside your scope) when nothing could be applied. Delivered households' goods leave "
    "the store: their reservation is issued (an issue line per household on the stock card), "
    "what a household turned back (`rejected`) is released. "
    "409 when the plan was cancelled (a resend of what was recorded before still answers).",
    responses=CANCELLED,
)
async def record_deliveries(
    plan_id: uuid.UUID, body: schemas.DeliveryBatch, uow: Uow
) -> schemas.DeliveryResult:
    return await service.record(uow, plan_id=plan_id, deliveries=body.deliveries)


@router.post(
    "/distribution-plans/{plan_id}/units/{unit_id}/deliveries",
    response_model=schemas.DeliveryResult,
    summary="Confirm a whole unit at once",
    description="One confirmation for every household of the unit not delivered yet; resent "
    "with the same `client_ref` it changes nothing. Delivered, their goods are issued from "
    "the store. Households marked before as refused, moved or unit_sealed (waiting for "
    "their door delivery) are left as they are and listed in `kept` (an absent one is "
    "tried again). 422 naming `at` when it is in the future or before the plan was made "
    "(beyond the clocks' tolerance). 409 when the plan was cancelled.",
    responses=CANCELLED,
)
async def record_unit_delivery(
    plan_id: uuid.UUID, unit_id: uuid.UUID, body: schemas.UnitDelivery, uow: Uow
) -> schemas.DeliveryResult:
    return await service.record_unit(uow, plan_id=plan_id, unit_id=unit_id, data=body)
