import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from services.registry.models import (
    Building,
    Household,
    Resident,
    ResidentMove,
    Unit,
    mask_to_tags,
    tags_to_mask,
)
from services.registry.residents import repository, schemas
from shared.auth import UNSCOPED
from shared.authz import MANAGERS, Place, policy
from shared.contracts.registry import (
    HouseholdRecord,
    HouseholdRegistered,
    ResidentRecord,
    ResidentRegistered,
    ResidentUpdated,
)
from shared.problems import Conflict, Invalid
from shared.uow import UnitOfWork


def record_of(resident: Resident) -> ResidentRecord:
    return ResidentRecord(
        id=resident.id,
        household_id=resident.household_id,
        town_id=resident.town_id,
        compound_id=resident.compound_id,
        building_id=resident.building_id,
        unit_id=resident.unit_id,
        name=resident.name,
        document_number=resident.document_number,
        phone=resident.phone,
        birth_date=resident.birth_date,
        tags=mask_to_tags(resident.tags),
        language=resident.language,
        opted_out=resident.opted_out,
    )


def household_record(household: Household) -> HouseholdRecord:
    assert household.compound_id is not None and household.building_id is not None
    return HouseholdRecord(
        id=household.id,
        town_id=household.town_id,
        compound_id=household.compound_id,
        building_id=household.building_id,
        unit_id=household.unit_id,
        code=household.code,
        room=household.room,
    )


# Households and residents are registered, changed and moved by those who manage their
# compound.
RESIDENTS = policy("residents", "manage", *MANAGERS)


async def create_household(uow: UnitOfWork, *, data: schemas.HouseholdCreate) -> Household:
    building = await uow.get(Building, data.building_id, what="building", field="building_id")
    RESIDENTS.check(uow, Place.of(building), field="building_id")
    if data.unit_id is not None:
        unit = await uow.get(Unit, data.unit_id, what="unit", field="unit_id")
        if unit.building_id != building.id:
            raise Invalid.on("unit_id", f"unit {unit.code} is not in building {building.code}")
    elif await repository.has_units(uow, building.id):
        # Each unit numbers its own households: household 101 of which stairwell? (The
        # ledger refuses such a row too, and a building with unitless households gets no
        # unit: a building's households are all in units or none is.)
        raise Invalid.on("unit_id", f"building {building.code} has units: say which unit")
    # A household code is unique within its unit (or its building, without a unit).
    same_unit = (
        Household.unit_id.is_(None) if data.unit_id is None else Household.unit_id == data.unit_id
    )
    taken = await uow.session.scalar(
        select(Household.id).where(
            Household.building_id == building.id, same_unit, Household.code == data.code
        )
    )
    if taken is not None:
        where = f"unit {unit.code} of building" if data.unit_id is not None else "building"
        message = f"household {data.code} exists in {where} {building.code}"
        raise Conflict(message, errors=[{"field": "code", "message": message}])
    household = Household(
        **Place.of(building).columns(),
        unit_id=data.unit_id,
        code=data.code,
        room=data.room,
    )
    uow.session.add(household)
    await uow.session.flush()
    uow.emit(
        HouseholdRegistered(household=household_record(household)),
        compound_id=household.compound_id,
    )
    return household


async def _writable_household(uow: UnitOfWork, household_id: uuid.UUID) -> Household:
    household = await uow.get(Household, household_id, what="household", field="household_id")
    RESIDENTS.check(uow, Place.of(household), field="household_id")
    return household


async def create_resident(uow: UnitOfWork, *, data: schemas.ResidentCreate) -> Resident:
    household = await _writable_household(uow, data.household_id)
    await _ensure_new_document(uow, data.document_number)
    now = datetime.now(UTC)
    resident = Resident(
        town_id=household.town_id,
        compound_id=household.compound_id,
        building_id=household.building_id,
        unit_id=household.unit_id,
        household_id=household.id,
        name=data.name,
        document_type=data.document_type.value,
        document_number=data.document_number,
        phone=data.phone,
        birth_date=data.birth_date,
        sex=data.sex.value if data.sex else None,
        tags=tags_to_mask(data.tags),
        care_notes=data.care_notes,
        language=data.language.value,
        opted_out=data.opted_out,
        registered_at=now,
        updated_at=now,
    )
    uow.session.add(resident)
    await uow.session.flush()
    uow.emit(ResidentRegistered(resident=record_of(resident)), compound_id=resident.compound_id)
    return resident


async def _ensure_new_document(uow: UnitOfWork, number: str) -> None:
    # Uniqueness is town-wide, beyond the caller's scope: ask without the scope filter,
    # and say only that the number is taken, not where.
    existing = await uow.session.scalar(
        select(Resident.id).where(Resident.document_number == number),
        execution_options=UNSCOPED,
    )
    if existing is not None:
        message = "a resident with this document number is registered already"
        raise Conflict(message, errors=[{"field": "document_number", "message": message}])


async def _writable_resident(uow: UnitOfWork, resident_id: uuid.UUID) -> Resident:
    resident = await uow.get(Resident, resident_id, what="resident")
    RESIDENTS.check(uow, Place.of(resident))
    return resident


async def update_resident(
    uow: UnitOfWork, *, resident_id: uuid.UUID, data: schemas.ResidentUpdate
) -> Resident:
    resident = await _writable_resident(uow, resident_id)
    changes = data.model_dump(exclude_unset=True)
    if "tags" in changes:
        changes["tags"] = tags_to_mask(changes["tags"] or [])
    for key in ("language", "opted_out"):  # null leaves a preference as it is
        if key in changes and changes[key] is None:
            del changes[key]
    if "name" in changes and changes["name"] is None:
        raise Invalid("name cannot be emptied", errors=[{"field": "name", "message": "required"}])
    changed = {k: v for k, v in changes.items() if getattr(resident, k) != v}
    if changed:
        for key, value in changed.items():
            setattr(resident, key, value)
        resident.updated_at = datetime.now(UTC)
        await uow.session.flush()
        uow.emit(ResidentUpdated(resident=record_of(resident)), compound_id=resident.compound_id)
    return resident


async def move_resident(
    uow: UnitOfWork, *, resident_id: uuid.UUID, data: schemas.ResidentMove
) -> Resident:
    resident = await _writable_resident(uow, resident_id)
    target = await _writable_household(uow, data.household_id)
    if target.id == resident.household_id:
        message = "the resident lives in this household already"
        raise Invalid(message, errors=[{"field": "household_id", "message": message}])
    now = datetime.now(UTC)
    uow.session.add(
        ResidentMove(
            town_id=target.town_id,
            compound_id=target.compound_id,
            building_id=target.building_id,
            resident_id=resident.id,
            from_household_id=resident.household_id,
            to_household_id=target.id,
            reason=data.reason,
            moved_by=uow.principal.username,
            moved_at=now,
        )
    )
    resident.household_id = target.id
    resident.town_id = target.town_id
    resident.compound_id = target.compound_id
    resident.building_id = target.building_id
    resident.unit_id = target.unit_id
    resident.updated_at = now
    await uow.session.flush()
    uow.emit(
        ResidentUpdated(resident=record_of(resident), moved=True), compound_id=target.compound_id
    )
    return resident


def present(resident: Resident, *, zone: str | None) -> schemas.ResidentOut:
    """A resident in clear; the endpoint's presenter masks what the caller may not see."""
    return schemas.ResidentOut(
        id=resident.id,
        household_id=resident.household_id,
        town_id=resident.town_id,
        compound_id=resident.compound_id,
        building_id=resident.building_id,
        unit_id=resident.unit_id,
        name=resident.name,
        document_type=resident.document_type,
        document_number=resident.document_number,
        phone=resident.phone,
        birth_date=resident.birth_date,
        birth_year=resident.birth_date.year if resident.birth_date else None,
        sex=resident.sex,
        tags=mask_to_tags(resident.tags),
        care_notes=resident.care_notes,
        language=resident.language,
        opted_out=resident.opted_out,
        zone=zone,
        registered_at=resident.registered_at,
        updated_at=resident.updated_at,
    )
