import uuid

from fastapi import Path

from services.notify.models import SERVICE
from services.notify.rules import schemas, service
from shared.http import Uow, service_router

router = service_router(SERVICE, tags=["rules"])
Key = Path(pattern=r"^[a-z][a-z0-9_]{1,59}$")


@router.get(
    "/rules",
    response_model=list[schemas.RuleOut],
    summary="The rules that turn events into messages, as the town runs them",
)
async def list_rules(town_id: uuid.UUID, uow: Uow) -> list[schemas.RuleOut]:
    return [service.out(r) for r in await service.listed(uow, town_id=town_id)]


@router.patch(
    "/rules/{key}",
    response_model=schemas.RuleOut,
    summary="Switch a rule on or off, or change its template, priority or validity",
    description="A template the rule cannot fill (a variable it does not provide) is refused "
    "with 422 naming it.",
)
async def change_rule(body: schemas.RuleChange, uow: Uow, key: str = Key) -> schemas.RuleOut:
    return service.out(await service.change(uow, key=key, data=body))


@router.post(
    "/rules/{key}/preview",
    response_model=schemas.RulePreviewOut,
    summary="What a rule would send for an event: recipients, texts, segments",
    description="Nothing is sent. Counts the recipients you can see now.",
)
async def preview_rule(
    body: schemas.RulePreview, uow: Uow, key: str = Key
) -> schemas.RulePreviewOut:
    return await service.preview(uow, key=key, data=body)
