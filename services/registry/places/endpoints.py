import uuid

from services.registry.models import SERVICE, Building, Committee, Compound, Town, Unit
from services.registry.places import repository, schemas, service
from shared.http import Uow, service_router
from shared.pagination import Cursor, Limit, Page

router = service_router(SERVICE, tags=["places"])


@router.get("/towns", response_model=list[schemas.TownOut], summary="Towns in your scope")
async def list_towns(uow: Uow) -> list[Town]:
    return await repository.towns(uow)


@router.get("/committees", response_model=list[schemas.CommitteeOut])
async def list_committees(uow: Uow, town_id: uuid.UUID | None = None) -> list[Committee]:
    return await repository.committees(uow, town_id=town_id)


@router.post("/committees", status_code=201, response_model=schemas.CommitteeOut)
async def create_committee(body: schemas.CommitteeCreate, uow: Uow) -> Committee:
    return await service.create_committee(uow, data=body)


@router.get("/compounds", response_model=list[schemas.CompoundOut])
async def list_compounds(uow: Uow, committee_id: uuid.UUID | None = None) -> list[Compound]:
    return await repository.compounds(uow, committee_id=committee_id)


@router.post(
    "/compounds",
    status_code=201,
    response_model=schemas.CompoundOut,
    summary="Register a compound and its gates (town operators)",
)
async def create_compound(body: schemas.CompoundCreate, uow: Uow) -> Compound:
    return await service.create_compound(uow, data=body)


@router.get("/compounds/{compound_id}", response_model=schemas.CompoundOut)
async def get_compound(compound_id: uuid.UUID, uow: Uow) -> Compound:
    return await uow.get(Compound, compound_id, what="compound")


@router.get("/compounds/{compound_id}/gates", response_model=list[schemas.GateOut])
async def list_gates(compound_id: uuid.UUID, uow: Uow) -> list[object]:
    return list(await service.list_gates(uow, compound_id=compound_id))


@router.post("/compounds/{compound_id}/gates", status_code=201, response_model=schemas.GateOut)
async def add_gate(compound_id: uuid.UUID, body: schemas.GateCreate, uow: Uow) -> object:
    return await service.add_gate(uow, compound_id=compound_id, data=body)


@router.patch(
    "/compounds/{compound_id}/gates/{gate_id}",
    response_model=schemas.GateOut,
    summary="Open, close or guard a gate",
)
async def set_gate_state(
    compound_id: uuid.UUID, gate_id: uuid.UUID, body: schemas.GateUpdate, uow: Uow
) -> object:
    return await service.set_gate_state(
        uow, compound_id=compound_id, gate_id=gate_id, state=body.state
    )


@router.get("/buildings", response_model=Page[schemas.BuildingOut])
async def list_buildings(
    uow: Uow, compound_id: uuid.UUID | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page[schemas.BuildingOut]:
    page, following = await repository.buildings_page(
        uow, compound_id=compound_id, cursor=cursor, limit=limit
    )
    return Page(items=[schemas.BuildingOut.model_validate(b) for b in page], next_cursor=following)


@router.post("/buildings", status_code=201, response_model=schemas.BuildingOut)
async def create_building(body: schemas.BuildingCreate, uow: Uow) -> Building:
    return await service.create_building(uow, data=body)


@router.get("/units", response_model=Page[schemas.UnitOut])
async def list_units(
    uow: Uow, building_id: uuid.UUID | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page[schemas.UnitOut]:
    page, following = await repository.units_page(
        uow, building_id=building_id, cursor=cursor, limit=limit
    )
    return Page(items=[schemas.UnitOut.model_validate(u) for u in page], next_cursor=following)


@router.post(
    "/units",
    status_code=201,
    response_model=schemas.UnitOut,
    description="A unit (stairwell, entrance) of a building. 409 naming `building_id` when "
    "the building already has households without a unit (a self-built house): they are "
    "identified by building, and a unit would strand them.",
    responses={
        409: {"description": "The unit's code is taken, or the building's households have no unit"}
    },
)
async def create_unit(body: schemas.UnitCreate, uow: Uow) -> Unit:
    return await service.create_unit(uow, data=body)


@router.get("/grids", response_model=list[schemas.GridOut], summary="Grids and microgrids")
async def list_grids(uow: Uow, compound_id: uuid.UUID | None = None) -> list[schemas.GridOut]:
    return [
        await service.grid_out(uow, g) for g in await repository.grids(uow, compound_id=compound_id)
    ]


@router.post("/grids", status_code=201, response_model=schemas.GridOut)
async def create_grid(body: schemas.GridCreate, uow: Uow) -> schemas.GridOut:
    return await service.create_grid(uow, data=body)
