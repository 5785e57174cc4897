from typing import Annotated

from fastapi import Header, Request

from services.notify.delivery import receipts, repository, schemas
from services.notify.models import SERVICE
from services.notify.settings import get_notify_settings
from shared.auth import Principal
from shared.authz import TOWN, Role, policy
from shared.http import Uow, runtime_of, service_router
from shared.problems import Unauthorized

router = service_router(SERVICE, tags=["sms delivery"])
GATEWAYS = policy("SMS gateways", "read", *TOWN, Role.service)
SWITCHES_SHOWN = 50


@router.post(
    "/sms-receipts",
    response_model=schemas.ReceiptsOut,
    summary="Delivery receipts from the SMS gateway (signed)",
    description="Called by the SMS gateway, not by people: no token, but the raw body must "
    "carry its HMAC-SHA256 under the shared receipt secret in `X-Signature: sha256=<hex>`. "
    "A duplicated or out-of-order receipt changes nothing: a delivered message stays "
    "delivered.",
    responses={401: {"description": "The signature is missing or wrong"}},
)
async def sms_receipts(
    request: Request,
    body: schemas.ReceiptsIn,
    x_signature: Annotated[str | None, Header(description="sha256=<hex HMAC of the body>")] = None,
) -> schemas.ReceiptsOut:
    secret = get_notify_settings().receipt_secret
    if not receipts.signed(await request.body(), x_signature, secret=secret):
        raise Unauthorized("the receipt's signature is missing or wrong")
    async with runtime_of(request).uow(Principal.system("notify.receipts")) as uow:
        applied = await receipts.apply_receipts(uow, receipts=body.receipts)
        await uow.commit()
    return schemas.ReceiptsOut(applied=applied, ignored=len(body.receipts) - applied)


@router.get(
    "/sms-gateways",
    response_model=schemas.GatewaysOut,
    summary="The SMS gateways, the one in use and the latest switches with their reasons",
)
async def sms_gateways(uow: Uow) -> schemas.GatewaysOut:
    GATEWAYS.check_role(uow)
    settings = get_notify_settings()
    configured = [settings.gateway_name]
    if settings.fallback_gateway:
        configured.append(settings.fallback_name)
    rows = await repository.latest_switches(uow, limit=SWITCHES_SHOWN)
    return schemas.GatewaysOut(
        configured=configured,
        active=rows[0].to_gateway if rows else settings.gateway_name,
        switches=[schemas.SwitchOut.model_validate(r) for r in rows],
    )
