from typing import Annotated

from fastapi import Query

from services.logistics.items import repository, schemas, service
from services.logistics.models import SERVICE, Item
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page

router = service_router(SERVICE, tags=["items"])


@router.post(
    "/items",
    status_code=201,
    response_model=schemas.ItemOut,
    summary="Add an item to the town's catalogue",
    description="Town operators keep the catalogue; a name is used once per town (409).",
)
async def create_item(body: schemas.ItemCreate, uow: Uow) -> Item:
    return await service.create_item(uow, data=body)


@router.get("/items", response_model=Page[schemas.ItemOut], summary="The item catalogue")
async def list_items(
    uow: Uow,
    category: Annotated[str | None, Query(max_length=60, pattern=r"^[^\x00-\x1f]*$")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.ItemOut]:
    page, following = await repository.items_page(
        uow, category=category, cursor=cursor, limit=limit
    )
    return Page(items=[schemas.ItemOut.model_validate(i) for i in page], next_cursor=following)


@router.post(
    "/kits",
    status_code=201,
    response_model=schemas.KitOut,
    summary="Define a kit (a supply package) of catalogue items",
)
async def create_kit(body: schemas.KitCreate, uow: Uow) -> schemas.KitOut:
    return await service.create_kit(uow, data=body)


@router.get("/kits", response_model=Page[schemas.KitOut], summary="Kits of the catalogue")
async def list_kits(uow: Uow, cursor: Cursor = None, limit: Limit = 100) -> Page[schemas.KitOut]:
    page, following = await repository.kits_page(uow, cursor=cursor, limit=limit)
    return Page(items=await service.kits_out(uow, page), next_cursor=following)
