import uuid

from fastapi import Path

from services.notify.models import SERVICE
from services.notify.templates import schemas, service
from shared.http import Uow, service_router

router = service_router(SERVICE, tags=["templates"])
Key = Path(pattern=schemas.KEY_PATTERN)


@router.get(
    "/templates",
    response_model=list[schemas.TemplateOut],
    summary="The town's templates, each at its newest version",
    description="Built-in templates are every town's version 1; lengths and segments count "
    "the provider's signature.",
)
async def list_templates(town_id: uuid.UUID, uow: Uow) -> list[schemas.TemplateOut]:
    return [service.out(t) for t in await service.listed(uow, town_id=town_id)]


@router.get(
    "/templates/{key}/versions",
    response_model=list[schemas.TemplateOut],
    summary="Every version of a template, oldest first",
)
async def template_versions(
    town_id: uuid.UUID, uow: Uow, key: str = Key
) -> list[schemas.TemplateOut]:
    return [service.out(t) for t in await service.versions(uow, town_id=town_id, key=key)]


@router.post(
    "/templates",
    status_code=201,
    response_model=schemas.TemplateOut,
    summary="Add a template of the town's own",
)
async def create_template(body: schemas.TemplateCreate, uow: Uow) -> schemas.TemplateOut:
    return service.out(await service.create(uow, data=body))


@router.post(
    "/templates/{key}/versions",
    status_code=201,
    response_model=schemas.TemplateOut,
    summary="Edit a template: its next version",
    description="Refused (422) when a rule using the template would not fill a variable.",
)
async def edit_template(
    body: schemas.TemplateEdit, uow: Uow, key: str = Key
) -> schemas.TemplateOut:
    return service.out(await service.edit(uow, key=key, data=body))


@router.post(
    "/templates/{key}/preview",
    response_model=schemas.PreviewOut,
    summary="Render a template with variables: texts, lengths and segments",
)
async def preview_template(body: schemas.Preview, uow: Uow, key: str = Key) -> schemas.PreviewOut:
    return await service.preview(uow, key=key, data=body)
