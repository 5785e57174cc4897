import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from services.registry.models import (
    Building,
    Committee,
    Compound,
    CompoundStatus,
    Gate,
    GateState,
    Grid,
    GridBuilding,
    Household,
    Town,
    Unit,
)
from services.registry.places import schemas
from shared.authz import MANAGERS, TOWN, Place, policy
from shared.contracts.registry import PlaceRecord, PlaceRegistered
from shared.ids import new_id
from shared.problems import Conflict, Invalid
from shared.uow import UnitOfWork

# Committees and compounds are the town office's; what is inside a compound (gates,
# buildings, units, grids) is managed by those who manage the compound.
TOWN_PLACES = policy("committees and compounds", "create", *TOWN)
PLACES = policy("places", "manage", *MANAGERS)


def _registered(uow: UnitOfWork, place: PlaceRecord) -> None:
    uow.emit(PlaceRegistered(place=place), compound_id=place.compound_id)


async def _ensure_free(uow: UnitOfWork, query: object, message: str) -> None:
    """For the command line's town creation; over HTTP a taken code is the boundary's 409,
    from the unique constraint itself (``shared.conflicts``)."""
    if await uow.session.scalar(query) is not None:  # type: ignore[call-overload]
        raise Conflict(message, errors=[{"field": "code", "message": message}])


async def create_town(uow: UnitOfWork, *, code: str, name: str) -> Town:
    """Towns are created by an administrator (``cordon bootstrap``), not through the API."""
    await _ensure_free(uow, select(Town.id).where(Town.code == code), f"town {code} exists")
    town_id = new_id()
    town = Town(id=town_id, town_id=town_id, code=code, name=name)
    uow.session.add(town)
    await uow.session.flush()
    _registered(uow, PlaceRecord(kind="town", id=town.id, town_id=town.id, code=code, name=name))
    return town


async def create_committee(uow: UnitOfWork, *, data: schemas.CommitteeCreate) -> Committee:
    await uow.get(Town, data.town_id, what="town", field="town_id")
    TOWN_PLACES.check(uow, Place(data.town_id), field="town_id")
    committee = Committee(town_id=data.town_id, code=data.code, name=data.name)
    uow.session.add(committee)
    await uow.session.flush()
    _registered(
        uow,
        PlaceRecord(
            kind="committee",
            id=committee.id,
            town_id=data.town_id,
            committee_id=committee.id,
            code=data.code,
            name=data.name,
        ),
    )
    return committee


async def create_compound(uow: UnitOfWork, *, data: schemas.CompoundCreate) -> Compound:
    committee = await uow.get(Committee, data.committee_id, what="committee", field="committee_id")
    TOWN_PLACES.check(uow, Place(committee.town_id), field="committee_id")
    compound_id = new_id()
    compound = Compound(
        id=compound_id,
        compound_id=compound_id,
        town_id=committee.town_id,
        committee_id=committee.id,
        code=data.code,
        name=data.name,
        kind=data.kind.value,
        status=CompoundStatus.normal.value,
        status_since=datetime.now(UTC),
    )
    uow.session.add(compound)
    await uow.session.flush()
    for gate in data.gates:
        uow.session.add(_gate(compound, gate))
    _registered(
        uow,
        PlaceRecord(
            kind="compound",
            id=compound.id,
            town_id=compound.town_id,
            committee_id=committee.id,
            compound_id=compound.id,
            code=data.code,
            name=data.name,
        ),
    )
    return compound


def _gate(compound: Compound, data: schemas.GateCreate) -> Gate:
    return Gate(
        town_id=compound.town_id, compound_id=compound.id, name=data.name, state=data.state.value
    )


async def add_gate(uow: UnitOfWork, *, compound_id: uuid.UUID, data: schemas.GateCreate) -> Gate:
    compound = await uow.get(Compound, compound_id, what="compound")
    PLACES.check(uow, Place.of(compound))
    gate = _gate(compound, data)
    uow.session.add(gate)
    await uow.session.flush()
    return gate


async def set_gate_state(
    uow: UnitOfWork, *, compound_id: uuid.UUID, gate_id: uuid.UUID, state: GateState
) -> Gate:
    gate = await uow.get(Gate, gate_id, what="gate")
    if gate.compound_id != compound_id:
        raise Invalid(f"gate {gate_id} is not a gate of compound {compound_id}")
    PLACES.check(uow, Place.of(gate))
    gate.state = state.value
    await uow.session.flush()
    return gate


async def list_gates(uow: UnitOfWork, *, compound_id: uuid.UUID) -> list[Gate]:
    await uow.get(Compound, compound_id, what="compound")
    query = select(Gate).where(Gate.compound_id == compound_id).order_by(Gate.name)
    return list((await uow.session.scalars(query)).all())


async def create_building(uow: UnitOfWork, *, data: schemas.BuildingCreate) -> Building:
    compound = await uow.get(Compound, data.compound_id, what="compound", field="compound_id")
    PLACES.check(uow, Place.of(compound), field="compound_id")
    if len(set(data.units)) != len(data.units):
        raise Invalid("unit codes repeat", errors=[{"field": "units", "message": "codes repeat"}])
    building_id = new_id()
    building = Building(
        id=building_id,
        building_id=building_id,
        town_id=compound.town_id,
        compound_id=compound.id,
        code=data.code,
        name=data.name or f"Building {data.code}",
    )
    uow.session.add(building)
    await uow.session.flush()
    _registered(
        uow,
        PlaceRecord(
            kind="building",
            id=building.id,
            town_id=compound.town_id,
            committee_id=compound.committee_id,
            compound_id=compound.id,
            building_id=building.id,
            code=building.code,
            name=building.name,
        ),
    )
    for unit_code in data.units:
        await _add_unit(uow, building, unit_code)
    return building


async def create_unit(uow: UnitOfWork, *, data: schemas.UnitCreate) -> Unit:
    building = await uow.get(Building, data.building_id, what="building", field="building_id")
    PLACES.check(uow, Place.of(building), field="building_id")
    # Households are identified within their unit once a building has units (the ledger
    # refuses a row without one there): a unit added to a self-built house would strand
    # its households. Refused rather than moving families into a unit nobody chose.
    unplaced = select(Household.id).where(
        Household.building_id == building.id, Household.unit_id.is_(None)
    )
    if await uow.session.scalar(unplaced.limit(1)) is not None:
        raise Conflict.on(
            "building_id",
            f"building {building.code}'s households have no unit; a building with "
            "households by building cannot be given units",
        )
    return await _add_unit(uow, building, data.code)


async def _add_unit(uow: UnitOfWork, building: Building, code: str) -> Unit:
    unit = Unit(
        town_id=building.town_id,
        compound_id=building.compound_id,
        building_id=building.id,
        code=code,
    )
    uow.session.add(unit)
    await uow.session.flush()
    _registered(
        uow,
        PlaceRecord(
            kind="unit",
            id=unit.id,
            town_id=building.town_id,
            compound_id=building.compound_id,
            building_id=building.id,
            code=code,
            name=f"{building.code}-{code}",
        ),
    )
    return unit


async def _grid_place(uow: UnitOfWork, data: schemas.GridCreate) -> Place:
    """Where a grid is placed: the compound that administers it, or else the place its
    buildings have in common (a grid over one committee's buildings is that committee's, and
    shows to no other), which the caller must manage."""
    if data.compound_id is not None:
        compound = await uow.get(Compound, data.compound_id, what="compound", field="compound_id")
        place, field = Place(compound.town_id, compound.committee_id, compound.id), "compound_id"
    else:
        buildings = await _buildings(uow, data.building_ids)
        compounds = await _committees_of(uow, {b.compound_id for b in buildings})
        covered = [Place(b.town_id, compounds.get(b.compound_id)) for b in buildings]
        place, field = Place.common(covered, town_id=data.town_id), "town_id"
    if place.town_id != data.town_id:
        raise Invalid.on("town_id", "the compound is in another town")
    PLACES.check(uow, place, field=field)
    return place


async def _buildings(uow: UnitOfWork, building_ids: list[uuid.UUID]) -> list[Building]:
    found = []
    for building_id in dict.fromkeys(building_ids):
        found.append(await uow.get(Building, building_id, what="building", field="building_ids"))
    return found


async def _committees_of(
    uow: UnitOfWork, compound_ids: set[uuid.UUID | None]
) -> dict[uuid.UUID | None, uuid.UUID]:
    query = select(Compound.id, Compound.committee_id).where(Compound.id.in_(compound_ids))
    return {c: k for c, k in (await uow.session.execute(query)).all()}


async def create_grid(uow: UnitOfWork, *, data: schemas.GridCreate) -> schemas.GridOut:
    place = await _grid_place(uow, data)
    if data.parent_id is not None:
        await uow.get(Grid, data.parent_id, what="grid", field="parent_id")
    grid = Grid(
        **place.columns(),
        parent_id=data.parent_id,
        code=data.code,
        name=data.name,
        leader_staff_id=data.leader_staff_id,
    )
    uow.session.add(grid)
    await uow.session.flush()
    for building in await _buildings(uow, data.building_ids):
        uow.session.add(
            GridBuilding(
                grid_id=grid.id,
                town_id=building.town_id,
                compound_id=building.compound_id,
                building_id=building.id,
            )
        )
    await uow.session.flush()
    out = await grid_out(uow, grid)
    _registered(uow, grid_record(grid, out.building_ids))
    return out


async def grid_out(uow: UnitOfWork, grid: Grid) -> schemas.GridOut:
    query = select(GridBuilding.building_id).where(GridBuilding.grid_id == grid.id)
    buildings = [b for b in (await uow.session.scalars(query)).all() if b is not None]
    return schemas.GridOut.model_validate(grid).model_copy(update={"building_ids": buildings})


def grid_record(grid: Grid, building_ids: list[uuid.UUID]) -> PlaceRecord:
    """A grid as other services see it: its buildings, which may span compounds (so no
    compound of its own), and its parent when it is a microgrid."""
    return PlaceRecord(
        kind="grid",
        id=grid.id,
        town_id=grid.town_id,
        code=grid.code,
        name=grid.name,
        parent_id=grid.parent_id,
        building_ids=building_ids,
    )
