import uuid
from typing import Annotated, Literal

from fastapi import Query

from services.registry.models import SERVICE, Household, Resident, ResidentMove, Tag, ZoneLevel
from services.registry.residents import repository, schemas, service
from shared.fields import FreeText
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page, next_cursor
from shared.privacy import PersonalField, Present, searchable

router = service_router(SERVICE, tags=["residents"])


@router.post(
    "/households",
    status_code=201,
    response_model=schemas.HouseholdOut,
    summary="Register a household in a building, in its unit when the building has units",
    description="A household is identified by its code within its unit, or within its "
    "building when the building has no units (a self-built house). In a building with units "
    "`unit_id` is required (422 naming it: the building has units, say which unit); a unit of "
    "another building is 422 naming `unit_id`, and one outside your scope 404.",
)
async def create_household(body: schemas.HouseholdCreate, uow: Uow) -> Household:
    return await service.create_household(uow, data=body)


@router.get("/households", response_model=Page[schemas.HouseholdOut])
async def list_households(
    uow: Uow,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.HouseholdOut]:
    rows = await repository.households_page(
        uow,
        compound_id=compound_id,
        building_id=building_id,
        unit_id=unit_id,
        cursor=cursor,
        limit=limit,
    )
    page, following = next_cursor(rows, limit)
    return Page(items=[schemas.HouseholdOut.model_validate(h) for h in page], next_cursor=following)


@router.get("/households/{household_id}", response_model=schemas.HouseholdOut)
async def get_household(household_id: uuid.UUID, uow: Uow) -> Household:
    return await uow.get(Household, household_id, what="household")


@router.post(
    "/residents",
    status_code=201,
    response_model=schemas.ResidentOut,
    summary="Register one resident in a household",
)
async def create_resident(
    body: schemas.ResidentCreate, uow: Uow, present: Present
) -> schemas.ResidentOut:
    resident = await service.create_resident(uow, data=body)
    return await _one(uow, present, resident)


@router.get(
    "/residents",
    response_model=Page[schemas.ResidentOut],
    summary="Search residents by name, phone or ID fragment, place, tag and zone",
)
async def search_residents(
    uow: Uow,
    present: Present,
    name: Annotated[FreeText | None, Query(max_length=60, description="Part of the name")] = None,
    phone: Annotated[FreeText | None, Query(max_length=20, description="Part of the phone")] = None,
    document: Annotated[
        FreeText | None, Query(min_length=4, max_length=40, description="Part of the ID number")
    ] = None,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    household_id: uuid.UUID | None = None,
    tag: Annotated[list[Tag] | None, Query(description="Repeat: residents with all")] = None,
    zone: ZoneLevel | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[schemas.ResidentOut]:
    searchable(
        uow, phone=(phone, PersonalField.phone), document=(document, PersonalField.id_number)
    )
    filters = repository.ResidentFilter(
        name=name,
        phone=phone,
        document=document,
        compound_id=compound_id,
        building_id=building_id,
        unit_id=unit_id,
        household_id=household_id,
        tags=tuple(tag or ()),
        zone=zone,
    )
    rows = await repository.residents_page(uow, filters, cursor=cursor, limit=limit)
    page, following = next_cursor([_Row(resident, zone) for resident, zone in rows], limit)
    items = [service.present(r.resident, zone=r.zone) for r in page]
    return await present(Page(items=items, next_cursor=following))


class _Row:
    __slots__ = ("id", "resident", "zone")

    def __init__(self, resident: Resident, zone: str | None) -> None:
        self.id, self.resident, self.zone = resident.id, resident, zone


@router.get(
    "/residents/counts",
    response_model=list[schemas.CountRow],
    summary="Residents and tags per compound, building or unit",
    description="E.g. elderly living alone per building: "
    "`?group_by=building&tag=elderly&tag=living_alone`.",
)
async def count_residents(
    uow: Uow,
    group_by: Literal["compound", "building", "unit"] = "compound",
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    tag: Annotated[list[Tag] | None, Query()] = None,
    zone: ZoneLevel | None = None,
) -> list[schemas.CountRow]:
    filters = repository.ResidentFilter(
        compound_id=compound_id, building_id=building_id, tags=tuple(tag or ()), zone=zone
    )
    rows = await repository.count_rows(uow, filters, group_by=group_by)
    keys = [k.key for k in repository.GROUPS[group_by]]
    out = []
    for row in rows:
        values = row._mapping
        out.append(
            schemas.CountRow(
                **{k: values[k] for k in keys},
                residents=values["residents"],
                tags={t.value: int(values[t.value] or 0) for t in Tag if values[t.value]},
            )
        )
    return out


@router.get("/residents/{resident_id}", response_model=schemas.ResidentOut)
async def get_resident(resident_id: uuid.UUID, uow: Uow, present: Present) -> schemas.ResidentOut:
    resident = await uow.get(Resident, resident_id, what="resident")
    return await _one(uow, present, resident)


@router.patch("/residents/{resident_id}", response_model=schemas.ResidentOut)
async def update_resident(
    resident_id: uuid.UUID,
    body: schemas.ResidentUpdate,
    uow: Uow,
    present: Present,
) -> schemas.ResidentOut:
    resident = await service.update_resident(uow, resident_id=resident_id, data=body)
    return await _one(uow, present, resident)


@router.post(
    "/residents/{resident_id}/move",
    response_model=schemas.ResidentOut,
    summary="Move a resident to another household (history is kept)",
)
async def move_resident(
    resident_id: uuid.UUID,
    body: schemas.ResidentMove,
    uow: Uow,
    present: Present,
) -> schemas.ResidentOut:
    resident = await service.move_resident(uow, resident_id=resident_id, data=body)
    return await _one(uow, present, resident)


@router.get("/residents/{resident_id}/moves", response_model=list[schemas.MoveOut])
async def list_moves(resident_id: uuid.UUID, uow: Uow) -> list[ResidentMove]:
    await uow.get(Resident, resident_id, what="resident")
    return await repository.moves_of(uow, resident_id)


async def _one(uow: Uow, present: Present, resident: Resident) -> schemas.ResidentOut:
    zone = await repository.zone_of(uow, resident.id)
    return await present(service.present(resident, zone=zone))
