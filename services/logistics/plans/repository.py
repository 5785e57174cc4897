"""The plans' named queries: where a plan goes, the households of its scope (sizes and tag
counts from the directory), its allocation as one ``INSERT ... SELECT`` per line, and the
lists read back from it."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import aliased
from sqlalchemy.types import Uuid

from services.logistics.models import (
    Allocation,
    AllocationStatus,
    CaseHousehold,
    DirectoryHousehold,
    DirectoryPlace,
    DirectoryResident,
    DirectoryZone,
    DistributionPlan,
    DoorReason,
    Item,
    Kit,
)
from services.logistics.plans.schemas import PlanLine, PlanScope
from shared.authz import Place
from shared.db import table_of
from shared.directory.zones import join_zone_levels, zone_level_of
from shared.pagination import fetch_page
from shared.problems import NotFound
from shared.uow import UnitOfWork

SCOPE_PLACE_KIND = {"compounds": "compound", "buildings": "building", "units": "unit"}


async def plan_place(uow: UnitOfWork, *, scope: PlanScope, town_id: uuid.UUID) -> Place:
    """Where a plan goes: the place its scope's places have in common; a 404 naming each
    place the caller cannot see."""
    if not uow.scope.allows(town_id=town_id):
        raise NotFound.on("town_id", f"no town {town_id} in your scope")
    # A zone level narrowed to compounds goes where those compounds are.
    kind = (
        "compound" if scope.kind == "zone_level" and scope.ids else SCOPE_PLACE_KIND.get(scope.kind)
    )
    if kind is None:
        return Place(town_id)
    query = select(DirectoryPlace).where(
        DirectoryPlace.kind == kind,
        DirectoryPlace.town_id == town_id,
        DirectoryPlace.id.in_(scope.ids),
    )
    found = {p.id: p for p in await uow.session.scalars(query)}
    errors = [
        {"field": f"scope.ids.{n}", "message": f"no {kind} {place_id} in your scope"}
        for n, place_id in enumerate(scope.ids)
        if place_id not in found
    ]
    if errors:
        raise NotFound(errors[0]["message"], errors=errors)
    committees: dict[uuid.UUID | None, uuid.UUID | None] = dict(
        (
            await uow.session.execute(
                select(DirectoryPlace.id, DirectoryPlace.committee_id).where(
                    DirectoryPlace.kind == "compound",
                    DirectoryPlace.id.in_({p.compound_id for p in found.values()}),
                )
            )
        ).all()
    )
    places = [
        Place(p.town_id, committees.get(p.compound_id), p.compound_id, p.building_id)
        for p in found.values()
    ]
    return Place.common(places, town_id=town_id)


def _has_tags(tags: Sequence[str]) -> ColumnElement[bool]:
    """A resident carries every one of ``tags``: the JSON list's text holds each as a quoted
    string (the same test on PostgreSQL's json and SQLite's text)."""
    text = cast(table_of(DirectoryResident).c.tags, String)
    return and_(*(text.like(f'%"{tag}"%') for tag in tags))


def _counting(condition: ColumnElement[bool]) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _households_in(scope: PlanScope, town_id: uuid.UUID) -> ColumnElement[bool]:
    """The directory households a plan's scope covers, as a condition on the directory."""
    households = table_of(DirectoryHousehold)
    in_town = households.c.town_id == town_id
    match scope.kind:
        case "town":
            return in_town
        case "compounds":
            return and_(in_town, households.c.compound_id.in_(scope.ids))
        case "buildings":
            return and_(in_town, households.c.building_id.in_(scope.ids))
        case "units":
            return and_(in_town, households.c.unit_id.in_(scope.ids))
    level = zone_level_of(
        table_of(DirectoryZone),
        building_id=households.c.building_id,
        unit_id=households.c.unit_id,
    )
    if scope.ids:
        in_town = and_(in_town, households.c.compound_id.in_(scope.ids))
    return and_(in_town, level == scope.zone_level)


def tags_counted(lines: Sequence[PlanLine]) -> list[str]:
    """Every tag a plan's lines look at, each counted once per household."""
    tags = {a.tag for line in lines for a in line.additions}
    tags |= {t for line in lines for t in line.only_tags}
    return sorted(tags)


def _residents_near(scope: PlanScope, town_id: uuid.UUID) -> ColumnElement[bool]:
    """Residents worth counting for the scope: its compounds or buildings, else the town
    (the join to the scope's households decides)."""
    r = table_of(DirectoryResident)
    match scope.kind:
        case "compounds" | "zone_level" if scope.ids:
            return and_(r.c.town_id == town_id, r.c.compound_id.in_(scope.ids))
        case "buildings":
            return and_(r.c.town_id == town_id, r.c.building_id.in_(scope.ids))
    return r.c.town_id == town_id


def households(plan: DistributionPlan, scope: PlanScope, tags: Sequence[str]) -> CTE:
    """The scope's households as the directory has them now, placed where the registry put
    the household: size, and per tag how many residents carry it (``tag_<name>``). A
    household is its residents: one with nobody registered receives nothing. Residents are
    counted first, on their own (one hashed pass over the table), then joined to the
    households: a town's merge join through two indexes took twice as long."""
    h = table_of(DirectoryHousehold)
    r = table_of(DirectoryResident)
    counted = [
        r.c.household_id,
        func.count().label("size"),
        *(_counting(_has_tags([t])).label(f"tag_{t}") for t in tags),
    ]
    if scope.tags:
        counted.append(_counting(_has_tags(scope.tags)).label("in_scope"))
    people = (
        select(*counted)
        .where(_residents_near(scope, plan.town_id))
        .group_by(r.c.household_id)
        .subquery("people")
    )
    placement = (h.c.town_id, h.c.committee_id, h.c.compound_id, h.c.building_id, h.c.unit_id)
    query = (
        select(
            h.c.id.label("household_id"),
            *placement,
            people.c.size,
            *(people.c[f"tag_{t}"] for t in tags),
        )
        .select_from(h.join(people, people.c.household_id == h.c.id))
        .where(_households_in(scope, plan.town_id))
    )
    if scope.tags:
        query = query.where(people.c.in_scope > 0)
    # Computed once for all the plan's lines.
    return query.cte("households")


def _quantity(line: PlanLine, h: CTE) -> Any:
    base: Any = literal(line.per_household, Integer)
    if line.large_household_size is not None:
        base = case(
            (h.c.size >= line.large_household_size, line.large_household_portions),
            else_=line.per_household,
        )
    for addition in line.additions:
        base = base + h.c[f"tag_{addition.tag}"] * addition.per_person
    return base


def _door_reason(h: CTE) -> tuple[Any, Any]:
    """The households joined to what sends them to the door, and the reason (a case before a
    sealing). Outer joins to small derived tables (each hashed once), not a probe per
    household; the derived tables are selects of their own, so the session's scope filters
    them inside and never turns an outer join into an inner one."""
    cases = table_of(CaseHousehold)
    zoned, level = join_zone_levels(
        h, table_of(DirectoryZone), building_id=h.c.building_id, unit_id=h.c.unit_id
    )
    case_households = select(cases.c.household_id).subquery("ch")
    joined = zoned.outerjoin(case_households, case_households.c.household_id == h.c.household_id)
    reason = case(
        (case_households.c.household_id.is_not(None), DoorReason.case.value),
        (level == "sealed", DoorReason.sealed.value),
        else_=None,
    )
    return joined, reason


COLUMNS = (
    "plan_id",
    "household_id",
    "item_id",
    "root_id",
    "unit_id",
    "household_size",
    "quantity",
    "status",
    "door_delivery",
    "door_reason",
    "door_since",
    "town_id",
    "committee_id",
    "compound_id",
    "building_id",
)


async def allocate(
    uow: UnitOfWork, *, plan: DistributionPlan, lines: Sequence[PlanLine], h: CTE, at: datetime
) -> None:
    """Allocate every line to the households it applies to that no plan of the family (the
    original and its top-ups) allocated its item to: one ``INSERT ... SELECT``, however many
    households and lines."""
    sources = [_line_source(plan=plan, line=line, h=h, at=at) for line in lines]
    source: Any = sources[0] if len(sources) == 1 else union_all(*sources)
    if uow.dialect == "postgresql":
        # A town's statement is estimated costly enough for PostgreSQL to compile it (JIT),
        # which took longer than running it: 12 s of a 100,000-resident plan. This
        # transaction only.
        await uow.session.execute(text("SET LOCAL jit = off"))
    await uow.session.execute(insert(table_of(Allocation)).from_select(COLUMNS, source))


def _line_source(*, plan: DistributionPlan, line: PlanLine, h: CTE, at: datetime) -> Any:
    allocations = table_of(Allocation)
    earlier = aliased(allocations)
    quantity = _quantity(line, h)
    joined, door_reason = _door_reason(h)
    conditions = [quantity > 0]
    if plan.top_up_of is not None:
        conditions.append(
            ~exists().where(
                earlier.c.root_id == plan.root_id,
                earlier.c.household_id == h.c.household_id,
                earlier.c.item_id == line.item_id,
            )
        )
    if line.only_tags:
        conditions.append(or_(*(h.c[f"tag_{t}"] > 0 for t in line.only_tags)))
    chosen = (
        select(h, quantity.label("quantity"), door_reason.label("door_reason"))
        .select_from(joined)
        .where(*conditions)
        .subquery("chosen")
    )
    c = chosen.c
    source = select(
        literal(plan.id, Uuid),
        c.household_id,
        literal(line.item_id, Uuid),
        literal(plan.root_id, Uuid),
        c.unit_id,
        c.size,
        c.quantity,
        literal(AllocationStatus.pending.value),
        c.door_reason.is_not(None),
        c.door_reason,
        literal(at),
        c.town_id,
        c.committee_id,
        c.compound_id,
        c.building_id,
    )
    return source


def _not_delivered(undelivered: bool) -> Any:
    return Allocation.status != AllocationStatus.delivered.value if undelivered else true()


async def compound_items(
    uow: UnitOfWork, plan_id: uuid.UUID, *, undelivered: bool = False
) -> list[Any]:
    """Per compound and item, the quantity allocated (to households not delivered yet)."""
    query = (
        select(
            Allocation.compound_id,
            Allocation.item_id,
            func.sum(Allocation.quantity).label("quantity"),
        )
        .where(Allocation.plan_id == plan_id, _not_delivered(undelivered))
        .group_by(Allocation.compound_id, Allocation.item_id)
        .order_by(Allocation.compound_id, Allocation.item_id)
    )
    return list((await uow.session.execute(query)).all())


async def compound_households(
    uow: UnitOfWork, plan_id: uuid.UUID, *, undelivered: bool = False
) -> list[Any]:
    """Per compound, the households allocated to (not delivered yet) and those of them
    served at the door."""
    door = case((Allocation.door_delivery, Allocation.household_id), else_=None)
    query = (
        select(
            Allocation.town_id,
            Allocation.compound_id,
            func.count(func.distinct(Allocation.household_id)).label("households"),
            func.count(func.distinct(door)).label("door"),
        )
        .where(Allocation.plan_id == plan_id, _not_delivered(undelivered))
        .group_by(Allocation.town_id, Allocation.compound_id)
    )
    return list((await uow.session.execute(query)).all())


async def households_of(uow: UnitOfWork, plan_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many households each plan allocates to, read through the caller's scope (a
    plan without any in it is left out)."""
    query = (
        select(Allocation.plan_id, func.count(func.distinct(Allocation.household_id)))
        .where(Allocation.plan_id.in_(plan_ids))
        .group_by(Allocation.plan_id)
    )
    return {plan_id: int(n) for plan_id, n in (await uow.session.execute(query)).all()}


async def cancel_undelivered(uow: UnitOfWork, plan_id: uuid.UUID) -> None:
    """Every household of the plan not delivered is to be delivered no more: ``cancelled``
    (one statement; the reason of an earlier failed try stays)."""
    await uow.session.execute(
        update(Allocation)
        .where(Allocation.plan_id == plan_id, _not_delivered(True))
        .values(status=AllocationStatus.cancelled.value)
        .execution_options(synchronize_session=False)
    )


def _codes() -> tuple[Any, Any, Any]:
    return aliased(DirectoryPlace), aliased(DirectoryPlace), aliased(DirectoryHousehold)


def _walking_order(building: Any, unit: Any, household: Any) -> list[Any]:
    """Building, unit and household in the order of their numbers (2 before 10): shorter
    codes first, then by text."""
    order: list[Any] = []
    for code in (building.code, unit.code, household.code):
        order += [func.length(code), code]
    return [*order[:2], Allocation.building_id, *order[2:]]


async def pick_rows(
    uow: UnitOfWork, *, plan_id: uuid.UUID, building_id: uuid.UUID | None
) -> list[Any]:
    """The plan's allocations in the order a building leader walks them: building, unit,
    household; with the codes printed on the doors."""
    building, unit, household = _codes()
    query = (
        select(
            Allocation.building_id,
            building.code.label("building_code"),
            unit.code.label("unit_code"),
            household.code.label("household_code"),
            household.room,
            Allocation.household_id,
            Allocation.household_size,
            Allocation.item_id,
            Allocation.quantity,
            Allocation.door_delivery,
            Allocation.door_reason,
            Allocation.status,
            Allocation.reason,
        )
        .outerjoin(building, building.id == Allocation.building_id)
        .outerjoin(unit, unit.id == Allocation.unit_id)
        .outerjoin(household, household.id == Allocation.household_id)
        .where(Allocation.plan_id == plan_id)
        .order_by(*_walking_order(building, unit, household))
    )
    if building_id is not None:
        query = query.where(Allocation.building_id == building_id)
    return list((await uow.session.execute(query)).all())


async def undelivered_rows(
    uow: UnitOfWork, *, plan_id: uuid.UUID, building_id: uuid.UUID | None
) -> list[Any]:
    """Households of the plan not delivered (one row each, whatever their items): pending,
    tried without success, or, the plan cancelled, ``cancelled``."""
    building, unit, household = _codes()
    query = (
        select(
            Allocation.building_id,
            building.code.label("building_code"),
            Allocation.household_id,
            household.code.label("household_code"),
            household.room,
            Allocation.unit_id,
            unit.code.label("unit_code"),
            Allocation.status,
            Allocation.reason,
            Allocation.door_delivery,
            Allocation.door_reason,
            # DISTINCT sorts only by what it selects.
            *(
                c.label(f"order_{n}")
                for n, c in enumerate(_walking_order(building, unit, household))
            ),
        )
        .distinct()
        .outerjoin(building, building.id == Allocation.building_id)
        .outerjoin(unit, unit.id == Allocation.unit_id)
        .outerjoin(household, household.id == Allocation.household_id)
        .where(
            Allocation.plan_id == plan_id,
            Allocation.status != AllocationStatus.delivered.value,
        )
        .order_by(*_walking_order(building, unit, household))
    )
    if building_id is not None:
        query = query.where(Allocation.building_id == building_id)
    return list((await uow.session.execute(query)).all())


async def catalogue(
    uow: UnitOfWork, *, town_id: uuid.UUID, item_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, bool]]:
    """The town catalogue's items and kits among these ids: name, and whether a kit."""
    found: dict[uuid.UUID, tuple[str, bool]] = {}
    for model, is_kit in ((Item, False), (Kit, True)):
        query = select(model.id, model.name).where(model.town_id == town_id, model.id.in_(item_ids))
        found.update({i: (name, is_kit) for i, name in await uow.session.execute(query)})
    return found


async def plans_page(
    uow: UnitOfWork, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = select(DistributionPlan)
    return await fetch_page(uow.session, query, DistributionPlan.id, cursor=cursor, limit=limit)


async def live_top_ups(uow: UnitOfWork, *, plan_id: uuid.UUID) -> list[DistributionPlan]:
    """The plan's top-ups not cancelled, and theirs, down the family, each row locked as a
    cancellation locks its plan (``FOR UPDATE``), original before top-up."""
    found: list[DistributionPlan] = []
    parents = [plan_id]
    while parents:
        query = (
            select(DistributionPlan)
            .where(DistributionPlan.top_up_of.in_(parents), DistributionPlan.cancelled_at.is_(None))
            .order_by(DistributionPlan.id)
            .with_for_update()
        )
        level = list((await uow.session.scalars(query)).all())
        found += level
        parents = [p.id for p in level]
    return found
