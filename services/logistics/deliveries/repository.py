"""The deliveries' named queries: households' states in a plan, confirmations seen before,
and the set-based changes a batch of confirmations or an event makes."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from services.logistics.models import (
    Allocation,
    AllocationStatus,
    Delivery,
    DistributionPlan,
    DoorReason,
)
from shared.db import insert_ignoring_duplicates, table_of
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
    return Allocation.status != AllocationStatus.delivered.value


async def follow_zone(
    uow: UnitOfWork,
    *,
    building_id: uuid.UUID,
    unit_id: uuid.UUID | None,
    sealed: bool,
    at: datetime,
) -> None:
    """Households not delivered yet in a building or unit whose zone changed: to the door
    when it was sealed, back to collection when lifted (unless a case keeps them at the
    door). A change older than the one the row followed is ignored."""
    where = [
        Allocation.building_id == building_id,
        _open(),
        or_(Allocation.door_since.is_(None), Allocation.door_since < at),
    ]
    if unit_id is not None:
        where.append(Allocation.unit_id == unit_id)
    if sealed:
        where.append(
            or_(Allocation.door_reason.is_(None), Allocation.door_reason == DoorReason.sealed)
        )
        values: dict[str, Any] = {
            "door_delivery": True,
            "door_reason": DoorReason.sealed.value,
            "door_since": at,
        }
    else:
        where.append(Allocation.door_reason == DoorReason.sealed.value)
        values = {"door_delivery": False, "door_reason": None, "door_since": at}
    await uow.session.execute(
        update(Allocation)
        .where(and_(*where))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def to_door_for_case(uow: UnitOfWork, *, household_id: uuid.UUID) -> None:
    await uow.session.execute(
        update(Allocation)
        .where(Allocation.household_id == household_id, _open())
        .values(door_delivery=True, door_reason=DoorReason.case.value)
        .execution_options(synchronize_session=False)
    )
