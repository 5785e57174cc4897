"""The deliveries' named queries: households' states in a plan, confirmations seen before,
and the set-based changes a batch of confirmations or an event makes."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update

from services.logistics.models import (
    Allocation,
    AllocationStatus,
    Delivery,
    DirectoryZone,
    DistributionPlan,
    DoorReason,
)
from shared.db import AnySelect, insert_ignoring_duplicates, table_of
from shared.directory.zones import zone_level_of
from shared.uow import UnitOfWork

# Ids per IN list, well under SQLite's bound-parameter limit.
CHUNK = 2_000


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[n : n + CHUNK] for n in range(0, len(values), CHUNK)]


def _household_columns() -> tuple[Any, ...]:
    return (
        Allocation.household_id,
        Allocation.town_id,
        Allocation.committee_id,
        Allocation.compound_id,
        Allocation.building_id,
        Allocation.unit_id,
        Allocation.status,
        Allocation.reason,
        Allocation.door_delivery,
        Allocation.door_reason,
    )


def _of(plan: DistributionPlan) -> tuple[Any, ...]:
    """A plan's rows, by the allocations' key (its family) and the plan itself."""
    return (Allocation.root_id == plan.root_id, Allocation.plan_id == plan.id)


async def households(
    uow: UnitOfWork, *, plan: DistributionPlan, household_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Any]:
    """The plan's households among these, one row each (their items share the state)."""
    found: dict[uuid.UUID, Any] = {}
    for chunk in _chunks(list(dict.fromkeys(household_ids))):
        query = (
            select(*_household_columns())
            .distinct()
            .where(*_of(plan), Allocation.household_id.in_(chunk))
        )
        found.update({row.household_id: row for row in await uow.session.execute(query)})
    return found


async def allocated(
    uow: UnitOfWork, *, plan: DistributionPlan, household_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
    """What each of these households receives under the plan: quantity per line's item."""
    found: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
    for chunk in _chunks(list(household_ids)):
        query = select(Allocation.household_id, Allocation.item_id, Allocation.quantity).where(
            *_of(plan), Allocation.household_id.in_(chunk), Allocation.quantity > 0
        )
        for household_id, item_id, quantity in await uow.session.execute(query):
            found.setdefault(household_id, {})[item_id] = int(quantity)
    return found


async def unit_households(
    uow: UnitOfWork, *, plan: DistributionPlan, unit_id: uuid.UUID
) -> list[Any]:
    query = (
        select(*_household_columns())
        .distinct()
        .where(Allocation.plan_id == plan.id, Allocation.unit_id == unit_id)
        .order_by(Allocation.household_id)
    )
    return list((await uow.session.execute(query)).all())


async def seen(
    uow: UnitOfWork, *, plan_id: uuid.UUID, keys: Sequence[tuple[str, uuid.UUID]]
) -> set[tuple[str, uuid.UUID]]:
    """Which (client_ref, household) confirmations were recorded before."""
    found: set[tuple[str, uuid.UUID]] = set()
    for chunk in _chunks(list(keys)):
        query = select(Delivery.client_ref, Delivery.household_id).where(
            Delivery.plan_id == plan_id,
            Delivery.client_ref.in_({ref for ref, _ in chunk}),
            Delivery.household_id.in_({h for _, h in chunk}),
        )
        found.update((ref, h) for ref, h in await uow.session.execute(query))
    return found & set(keys)


async def last_tried(
    uow: UnitOfWork, *, plan_id: uuid.UUID, household_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """When each of these households' latest recorded confirmation in the plan happened."""
    found: dict[uuid.UUID, datetime] = {}
    for chunk in _chunks(list(dict.fromkeys(household_ids))):
        query = (
            select(Delivery.household_id, func.max(Delivery.at))
            .where(Delivery.plan_id == plan_id, Delivery.household_id.in_(chunk))
            .group_by(Delivery.household_id)
        )
        found.update({h: at for h, at in await uow.session.execute(query) if at is not None})
    return found


async def record(uow: UnitOfWork, rows: list[dict[str, Any]]) -> set[tuple[str, uuid.UUID]]:
    """Insert the confirmations, skipping any a concurrent resend recorded first (the
    unique client reference decides); returns those inserted now."""
    table = table_of(Delivery)
    statement = insert_ignoring_duplicates(table, uow.dialect).returning(
        table.c.client_ref, table.c.household_id
    )
    inserted: set[tuple[str, uuid.UUID]] = set()
    for chunk in _chunks(rows):
        result = await uow.session.execute(statement, list(chunk))
        inserted.update((ref, h) for ref, h in result.all())
    return inserted


async def set_state(
    uow: UnitOfWork,
    *,
    plan: DistributionPlan,
    household_ids: Sequence[uuid.UUID],
    values: dict[str, Any],
) -> None:
    """Change every item row of these households in the plan at once."""
    for chunk in _chunks(list(household_ids)):
        await uow.session.execute(
            update(Allocation)
            .where(*_of(plan), Allocation.household_id.in_(chunk))
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _open() -> Any:
    """Still to deliver: neither delivered nor cancelled with its plan."""
    still = (AllocationStatus.pending.value, AllocationStatus.undelivered.value)
    return Allocation.status.in_(still)


async def follow_zones(uow: UnitOfWork, *, building_ids: Sequence[uuid.UUID], at: datetime) -> None:
    """Households not delivered yet in these buildings follow their area's zone as the
    directory now holds it (a unit's own zone wins over its building's): to the door while
    sealed, back to collection once not (unless a case, or a deliverer's finding, keeps them
    at the door)."""
    level = zone_level_of(
        table_of(DirectoryZone), building_id=Allocation.building_id, unit_id=Allocation.unit_id
    )
    sealed = DoorReason.sealed.value
    for chunk in _chunks(list(building_ids)):
        here = (Allocation.building_id.in_(chunk), _open())
        await uow.session.execute(
            update(Allocation)
            .where(*here, Allocation.door_reason.is_(None), level == sealed)
            .values(door_delivery=True, door_reason=sealed, door_since=at)
            .execution_options(synchronize_session=False)
        )
        await uow.session.execute(
            update(Allocation)
            .where(*here, Allocation.door_reason == sealed, or_(level.is_(None), level != sealed))
            .values(door_delivery=False, door_reason=None, door_since=at)
            .execution_options(synchronize_session=False)
        )


def sealed_buildings() -> AnySelect:
    """Buildings with households sent to the door for a seal (a re-sync rechecks them)."""
    return (
        select(Allocation.building_id)
        .distinct()
        .where(Allocation.door_reason == DoorReason.sealed.value, _open())
    )


async def to_door_for_case(uow: UnitOfWork, *, household_id: uuid.UUID) -> None:
    await uow.session.execute(
        update(Allocation)
        .where(Allocation.household_id == household_id, _open())
        .values(door_delivery=True, door_reason=DoorReason.case.value)
        .execution_options(synchronize_session=False)
    )
