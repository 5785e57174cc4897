"""Distribution plans: items or kits to the households of a scope by rules held as data,
allocated set-based from the directory, then the pick lists building leaders print."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from services.logistics.items.service import expand
from services.logistics.models import DirectoryPlace, DistributionPlan
from services.logistics.plans import repository, schemas
from services.logistics.plans.cancelled import refuse_if_cancelled
from services.logistics.plans.schemas import PlanCreate, PlanLine, PlanScope, TopUpCreate
from services.logistics.reservations.service import Reference, release, reserve
from shared.authz import MANAGERS, Place, policy
from shared.contracts.logistics import DistributionCancelled, DistributionPlanned, ItemQuantity
from shared.directory.seen import above_scope, scope_ids_seen_each
from shared.ids import new_id
from shared.problems import Conflict, Invalid, NotFound
from shared.uow import UnitOfWork

# A plan is placed where its scope's places meet and made by those who manage that place:
# committee staff for their own compounds, the town office for the rest. Reading (pick
# lists, what is undelivered) is filtered by the caller's scope like every read.
PLAN = policy("distribution plans", "plan", *MANAGERS)


async def create_plan(uow: UnitOfWork, *, data: PlanCreate) -> DistributionPlan:
    PLAN.check_role(uow)
    place = await repository.plan_place(uow, scope=data.scope, town_id=data.town_id)
    PLAN.check(uow, place, field="scope")
    lines = await _catalogued(uow, town_id=data.town_id, lines=data.lines)
    plan_id = new_id()
    plan = DistributionPlan(
        id=plan_id,
        root_id=plan_id,
        top_up_of=None,
        **place.columns(),
        name=data.name,
        scope=data.scope.model_dump(mode="json"),
        lines=[line.model_dump(mode="json") for line in lines],
        created_by=uow.principal.username,
        created_at=datetime.now(UTC),
    )
    await _allocate(uow, plan, scope=data.scope, lines=lines)
    if plan.households == 0:
        raise Invalid.on("scope", "no household in this scope receives anything by these rules")
    return plan


async def create_top_up(
    uow: UnitOfWork, *, plan_id: uuid.UUID, data: TopUpCreate
) -> DistributionPlan:
    """A plan with the original's scope and rules for the households no plan of its family
    has allocated to yet (those registered since). It may find nobody: that is an answer."""
    # Shared with confirmations, exclusive to a cancellation: no top-up of a plan being
    # cancelled.
    original = await get_plan(uow, plan_id, lock="share")
    PLAN.check(uow, Place.of(original))
    refuse_if_cancelled(original)
    plan = DistributionPlan(
        id=new_id(),
        root_id=original.root_id,
        top_up_of=original.id,
        **Place.of(original).columns(),
        name=data.name or f"{original.name} (top-up)"[:120],
        scope=original.scope,
        lines=original.lines,
        created_by=uow.principal.username,
        created_at=datetime.now(UTC),
    )
    lines = [PlanLine.model_validate(line) for line in original.lines]
    await _allocate(uow, plan, scope=PlanScope.model_validate(original.scope), lines=lines)
    return plan


async def _allocate(
    uow: UnitOfWork, plan: DistributionPlan, *, scope: PlanScope, lines: list[PlanLine]
) -> None:
    """Write the plan and its allocation rows (one statement), reserve the stock they take,
    then announce it, one event per compound."""
    uow.session.add(plan)
    await uow.session.flush()
    households = repository.households(plan, scope, repository.tags_counted(lines))
    await repository.allocate(uow, plan=plan, lines=lines, h=households, at=plan.created_at)
    # Two passes over the new rows serve the count, the reservations and the events.
    items = await repository.compound_items(uow, plan.id)
    compounds = await repository.compound_households(uow, plan.id)
    plan.households = sum(int(row.households) for row in compounds)
    await _reserve(uow, plan, lines=lines, items=items)
    _announce(uow, plan, items=items, compounds=compounds)


async def _catalogued(
    uow: UnitOfWork, *, town_id: uuid.UUID, lines: Sequence[PlanLine]
) -> list[PlanLine]:
    """The lines, each naming an item or kit of the town's catalogue (404 naming the line
    otherwise), labelled with its catalogue name unless a label was given."""
    found = await repository.catalogue(uow, town_id=town_id, item_ids=[li.item_id for li in lines])
    errors = [
        {"field": f"lines.{n}.item_id", "message": f"no item or kit {line.item_id} in your scope"}
        for n, line in enumerate(lines)
        if line.item_id not in found
    ]
    if errors:
        raise NotFound(errors[0]["message"], errors=errors)
    return [
        line if line.label else line.model_copy(update={"label": found[line.item_id][0]})
        for line in lines
    ]


def _needs(items: list[Any]) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
    """Per compound (ascending: reservations lock holders in that order), the quantity of
    each line's item or kit the plan allocated there."""
    needs: dict[uuid.UUID, dict[uuid.UUID, int]] = {}
    for row in items:
        needs.setdefault(row.compound_id, {})[row.item_id] = int(row.quantity)
    return dict(sorted(needs.items()))


async def kits_of(uow: UnitOfWork, plan: DistributionPlan) -> set[uuid.UUID]:
    """Which of the plan's lines name a kit (reserved and issued as its items)."""
    found = await repository.catalogue(
        uow, town_id=plan.town_id, item_ids=[uuid.UUID(str(li["item_id"])) for li in plan.lines]
    )
    return {i for i, (_, is_kit) in found.items() if is_kit}


async def in_stock_items(
    uow: UnitOfWork,
    *,
    kits: set[uuid.UUID],
    quantities: dict[uuid.UUID, int],
    parts: dict[uuid.UUID, list[tuple[uuid.UUID, Decimal]]] | None = None,
) -> list[tuple[uuid.UUID, uuid.UUID, Decimal | int]]:
    """Allocated quantities per line's item or kit as the store counts them: (the line's
    item, the stocked item, quantity), a kit as its items. ``parts`` keeps each kit's
    expansion across calls (a caller walking many households reads a kit once)."""
    parts = {} if parts is None else parts
    lines: list[tuple[uuid.UUID, uuid.UUID, Decimal | int]] = []
    for item_id, quantity in quantities.items():
        if item_id not in kits:
            lines.append((item_id, item_id, quantity))
            continue
        if item_id not in parts:
            parts[item_id] = await expand(uow, kit_id=item_id)
        lines += [(item_id, part, amount * quantity) for part, amount in parts[item_id]]
    return lines


async def _reserve(
    uow: UnitOfWork, plan: DistributionPlan, *, lines: list[PlanLine], items: list[Any]
) -> None:
    """Reserve what the plan allocated at each compound's store, earliest expiry first (a
    kit as its items). All or nothing: when any compound is short, a 409 names every short
    line, by how much and where, and nothing of the plan is written."""
    kits = await kits_of(uow, plan)
    index = {line.item_id: n for n, line in enumerate(lines)}
    reference = Reference(kind="plan", id=plan.id, label=plan.name)
    errors: list[dict[str, Any]] = []
    for compound_id, needs in _needs(items).items():
        stocked = await in_stock_items(uow, kits=kits, quantities=needs)
        wanted: list[tuple[uuid.UUID, Decimal | int]] = [(part, q) for _, part, q in stocked]
        origin = [index[line_item] for line_item, _, _ in stocked]
        try:
            await reserve(uow, holder_id=compound_id, lines=wanted, reference=reference)
        except Conflict as short:
            errors += [_on_line(error, origin) for error in short.errors or []]
    if errors:
        detail = "; ".join(str(e["message"]) for e in errors)
        raise Conflict(f"not enough stock for this plan: {detail}", errors=errors)


def _on_line(error: dict[str, Any], origin: list[int]) -> dict[str, Any]:
    """A reservation's error, naming the plan's line rather than the reservation's."""
    n = int(str(error.get("field", "lines.0.quantity")).split(".")[1])
    return {**error, "field": f"lines.{origin[n]}.item_id"}


def _quantities(items: list[Any]) -> dict[Any, list[ItemQuantity]]:
    """Per compound, the quantity of each line's item or kit."""
    quantities: dict[Any, list[ItemQuantity]] = {}
    for row in items:
        quantity = ItemQuantity(item_id=row.item_id, quantity=int(row.quantity))
        quantities.setdefault(row.compound_id, []).append(quantity)
    return quantities


def _announce(
    uow: UnitOfWork, plan: DistributionPlan, *, items: list[Any], compounds: list[Any]
) -> None:
    """One ``logistics.distribution.planned`` per compound: its households and quantities."""
    quantities = _quantities(items)
    for row in compounds:
        uow.emit(
            DistributionPlanned(
                plan_id=plan.id,
                top_up_of=plan.top_up_of,
                name=plan.name,
                town_id=row.town_id,
                compound_id=row.compound_id,
                households=int(row.households),
                door_deliveries=int(row.door),
                items=quantities.get(row.compound_id, []),
            ),
            compound_id=row.compound_id,
        )


async def cancel_plan(
    uow: UnitOfWork, *, plan_id: uuid.UUID, data: schemas.PlanCancel
) -> DistributionPlan:
    """Cancel a plan (who may make it may cancel it), and with it its top-ups not cancelled
    yet (they deliver the same rules to the households registered since: nobody is to run
    them once the original is called off): what is still reserved for the households not
    delivered goes back to their stores, what was delivered stays issued, and those
    households are ``cancelled`` (no list shows them as still to deliver); one
    ``logistics.distribution.cancelled`` per plan and compound it covers, also where every
    household was delivered. Cancelling twice is a 409.

    The plan's row is locked first, then its top-ups' (confirmations and top-ups share
    them), so a confirmation either commits before, and is counted delivered, or finds the
    plan cancelled."""
    plan = await get_plan(uow, plan_id, lock="update")
    PLAN.check(uow, Place.of(plan))
    refuse_if_cancelled(plan)
    plans = [plan, *await repository.live_top_ups(uow, plan_id=plan.id)]
    left = {p.id: await _undelivered(uow, p) for p in plans}
    stores = {p.id: {row.compound_id for row in left[p.id][2]} for p in plans}
    # Every store the plans reserved at, in ascending order as reservations lock holders.
    for compound_id in sorted(set().union(*stores.values())):
        for each in plans:
            if compound_id in stores[each.id]:
                reference = Reference(kind="plan", id=each.id, label=each.name)
                await release(uow, holder_id=compound_id, reference=reference)
    at = datetime.now(UTC)
    for each in plans:
        await repository.cancel_undelivered(uow, each.id)
        each.cancelled_at = at
        each.cancelled_by = uow.principal.username
        each.cancel_reason = data.reason
        _announce_cancelled(uow, each, at=at, left=left[each.id])
    await uow.session.flush()
    return plan


async def _undelivered(
    uow: UnitOfWork, plan: DistributionPlan
) -> tuple[list[Any], dict[Any, int], list[Any]]:
    """What a plan being cancelled left undelivered: its items and households per compound
    not delivered, and every compound it covers."""
    items = await repository.compound_items(uow, plan.id, undelivered=True)
    households = {
        row.compound_id: int(row.households)
        for row in await repository.compound_households(uow, plan.id, undelivered=True)
    }
    return items, households, await repository.compound_households(uow, plan.id)


def _announce_cancelled(
    uow: UnitOfWork,
    plan: DistributionPlan,
    *,
    at: datetime,
    left: tuple[list[Any], dict[Any, int], list[Any]],
) -> None:
    """One ``logistics.distribution.cancelled`` per compound the plan covers."""
    items, households, compounds = left
    quantities = _quantities(items)
    for row in compounds:
        uow.emit(
            DistributionCancelled(
                plan_id=plan.id,
                name=plan.name,
                town_id=row.town_id,
                compound_id=row.compound_id,
                reason=plan.cancel_reason or "",
                cancelled_by=uow.principal.username,
                at=at,
                households=households.get(row.compound_id, 0),
                items=quantities.get(row.compound_id, []),
            ),
            compound_id=row.compound_id,
        )


async def get_plan(
    uow: UnitOfWork, plan_id: uuid.UUID, *, lock: Literal["share", "update"] | None = None
) -> DistributionPlan:
    """The plan, if the caller sees it (404 otherwise); ``lock`` takes its row's lock to the
    commit (``share``: confirmations and top-ups, side by side; ``update``: a cancellation,
    alone), read afresh under it."""
    plan = await uow.get(DistributionPlan, plan_id, what="distribution plan")
    if lock is not None:
        await uow.session.refresh(plan, with_for_update={"read": lock == "share"})
    return plan


async def present(uow: UnitOfWork, plan: DistributionPlan) -> schemas.PlanOut:
    """A plan as the caller may read it. One placed inside their scope is theirs whole; one
    placed above it (the town office's over two committees' compounds) shows only what is
    theirs: the places of its scope they see and its households in their scope, both read
    through their scope like every read."""
    [out] = await present_all(uow, [plan])
    return out


async def present_all(uow: UnitOfWork, plans: Sequence[DistributionPlan]) -> list[schemas.PlanOut]:
    """:func:`present` for a page of plans, their places and households read at once."""
    shown = [schemas.PlanOut.model_validate(plan) for plan in plans]
    above = {plan.id for plan in plans if above_scope(uow, plan)}
    if not above:
        return shown
    named = [(plan, out.scope.ids) for plan, out in zip(plans, shown, strict=True)]
    seen_each = await scope_ids_seen_each(uow, rows=DirectoryPlace, named=named)
    households = await repository.households_of(uow, list(above))
    return [
        out.model_copy(
            update={
                "scope": out.scope.model_copy(update={"ids": ids}),
                "households": households.get(out.id, 0),
            }
        )
        if out.id in above
        else out
        for out, ids in zip(shown, seen_each, strict=True)
    ]


async def _building(uow: UnitOfWork, building_id: uuid.UUID | None) -> None:
    """A building asked for by id is one the caller sees (404 naming the field otherwise)."""
    if building_id is not None:
        place = DirectoryPlace
        await uow.get(
            place, building_id, what="building", field="building_id", where=place.kind == "building"
        )


async def pick_rows(
    uow: UnitOfWork, *, plan: DistributionPlan, building_id: uuid.UUID | None
) -> list[Any]:
    await _building(uow, building_id)
    return await repository.pick_rows(uow, plan_id=plan.id, building_id=building_id)


async def undelivered(
    uow: UnitOfWork, *, plan_id: uuid.UUID, building_id: uuid.UUID | None
) -> list[schemas.UndeliveredBuilding]:
    """The plan's households not delivered yet, by building: pending (at the door or not)
    and those tried without success, with the reason."""
    await get_plan(uow, plan_id)
    await _building(uow, building_id)
    buildings: dict[Any, schemas.UndeliveredBuilding] = {}
    for row in await repository.undelivered_rows(uow, plan_id=plan_id, building_id=building_id):
        group = buildings.setdefault(
            row.building_id,
            schemas.UndeliveredBuilding(
                building_id=row.building_id, building_code=row.building_code, households=[]
            ),
        )
        group.households.append(schemas.PendingHousehold.model_validate(row, from_attributes=True))
    return list(buildings.values())
