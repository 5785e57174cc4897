"""Deliveries to households, from a deliverer's phone that may be offline: one household at
a time or a whole unit at once. Each confirmation carries the phone's ``client_ref``; one
received before is a duplicate and changes nothing (as the inbox treats a redelivered
event), so a phone may resend whatever it is unsure of.

Door delivery follows the households' circumstances: their area sealed (as the directory
holds the zones after a ``registry.zone.changed``: a unit's own zone wins over its
building's), a confirmed case (``testing.case.confirmed``), or a deliverer finding the unit
sealed."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.logistics.deliveries import repository, schemas
from services.logistics.models import (
    AllocationStatus,
    CaseHousehold,
    DistributionPlan,
    DoorReason,
)
from services.logistics.plans.cancelled import refuse_if_cancelled
from services.logistics.plans.service import get_plan, in_stock_items, kits_of
from services.logistics.reservations.service import Recipient, Reference, issue_delivered
from shared.authz import FIELD, Place, policy
from shared.contracts import registry
from shared.contracts.logistics import DeliveriesRecorded, DeliveryRecord, ItemQuantity
from shared.contracts.testing import CaseConfirmed
from shared.db import insert_ignoring_duplicates, table_of
from shared.events import Envelope, Event
from shared.problems import Invalid, NotFound, rows_rejected
from shared.settings import Settings
from shared.uow import UnitOfWork

# Staff, grid and building leaders and volunteers confirm deliveries to the households of
# the places they are responsible for.
DELIVER = policy("deliveries", "confirm", *FIELD)
# Reasons a household was not delivered that a whole unit's confirmation must not override:
# it said no, it is gone, or it waits at a sealed door. An absent one is simply tried again.
STANDING = frozenset({"refused", "moved", "unit_sealed"})


def _place(row: Any) -> Place:
    return Place(row.town_id, row.committee_id, row.compound_id, row.building_id)


def _state(outcome: schemas.Outcome, household: Any) -> dict[str, Any]:
    """The household's state after this confirmation."""
    if outcome.outcome == "delivered":
        return {
            "status": AllocationStatus.delivered.value,
            "reason": None,
            "delivered_at": outcome.at,
        }
    if outcome.reason == "unit_sealed":
        # Not a failure to report: the household now waits for its door delivery.
        return {
            "status": AllocationStatus.pending.value,
            "reason": outcome.reason,
            "door_delivery": True,
            "door_reason": household.door_reason or DoorReason.unit_sealed.value,
        }
    return {"status": AllocationStatus.undelivered.value, "reason": outcome.reason}


async def record(
    uow: UnitOfWork, *, plan_id: uuid.UUID, deliveries: list[schemas.DeliveryIn]
) -> schemas.DeliveryResult:
    """Apply each confirmation on its own: a bad one is reported by its row, the good ones
    are applied; those received before are counted unchanged. A cancelled plan refuses the
    whole request (409 saying when, by whom and why) unless it is all a resend."""
    plan = await get_plan(uow, plan_id, lock="share")
    DELIVER.check_role(uow)
    before = await repository.seen(
        uow, plan_id=plan.id, keys=[(d.client_ref, d.household_id) for d in deliveries]
    )
    if any((d.client_ref, d.household_id) not in before for d in deliveries):
        refuse_if_cancelled(plan)
    known = await repository.households(
        uow, plan=plan, household_ids=[d.household_id for d in deliveries]
    )
    received = await repository.allocated(
        uow, plan=plan, household_ids=[d.household_id for d in deliveries if d.rejected]
    )
    errors: list[schemas.RowError] = []
    fresh: list[tuple[schemas.DeliveryIn, Any]] = []
    unchanged = 0
    taken: set[uuid.UUID] = set()
    for row, delivery in enumerate(deliveries):
        household = known.get(delivery.household_id)
        if (delivery.client_ref, delivery.household_id) in before:
            unchanged += 1
        elif misdated := _misdated(delivery, plan=plan, settings=uow.settings):
            errors.append(schemas.RowError(row=row, field="at", message=misdated))
        elif household is None:
            message = f"no household {delivery.household_id} in this plan in your scope"
            errors.append(schemas.RowError(row=row, field="household_id", message=message))
        elif not DELIVER.allows(uow, _place(household)):
            message = f"household {delivery.household_id} is outside what you may confirm"
            errors.append(schemas.RowError(row=row, field="household_id", message=message))
        elif household.status == AllocationStatus.delivered.value:
            message = f"household {delivery.household_id} was delivered already"
            errors.append(schemas.RowError(row=row, field="household_id", message=message))
        elif delivery.household_id in taken:
            message = f"household {delivery.household_id} appears twice in this request"
            errors.append(schemas.RowError(row=row, field="household_id", message=message))
        elif wrong := _rejected_error(delivery, received.get(delivery.household_id, {})):
            field, message = wrong
            errors.append(schemas.RowError(row=row, field=field, message=message))
        else:
            taken.add(delivery.household_id)
            fresh.append((delivery, household))
    if errors and not fresh and not unchanged:
        raise rows_rejected(
            f"{len(errors)} confirmation(s) could not be applied; nothing changed",
            [{"row": e.row, "field": e.field, "message": e.message} for e in errors],
        )
    changed = await _apply(uow, plan, fresh)
    states = await repository.households(
        uow, plan=plan, household_ids=[d.household_id for d in deliveries]
    )
    return schemas.DeliveryResult(
        changed=changed,
        unchanged=unchanged + len(fresh) - changed,
        households=[
            schemas.HouseholdState.model_validate(s, from_attributes=True) for s in states.values()
        ],
        errors=errors,
    )


def _misdated(
    outcome: schemas.Outcome, *, plan: DistributionPlan, settings: Settings
) -> str | None:
    """Why ``at`` cannot be when the confirmation happened, if it cannot: in the future, or
    before its plan was made (a phone's clock reset), each beyond the clocks' tolerance
    (settings' ``clock_skew``), as the testing service judges a swab's time."""
    if outcome.at > settings.latest_stated():
        return (
            f"at {outcome.at.isoformat()} is in the future: a confirmation is recorded when it "
            "happened, no later than now (within the clocks' tolerance)"
        )
    if outcome.at < plan.created_at - settings.clock_skew:
        return (
            f"at {outcome.at.isoformat()} is before distribution plan {plan.name!r} was made "
            f"({plan.created_at.isoformat()}): a confirmation is dated when it happened; check "
            "the phone's clock"
        )
    return None


def _rejected_error(
    delivery: schemas.DeliveryIn, allocated: dict[uuid.UUID, int]
) -> tuple[str, str] | None:
    """What is wrong with the goods a household turned back (field, message), if anything:
    each must be a line's item it was allocated, no more than it was allocated."""
    turned: dict[uuid.UUID, int] = {}
    for n, line in enumerate(delivery.rejected):
        if line.item_id not in allocated:
            return f"rejected.{n}.item_id", (
                f"household {delivery.household_id} was allocated no {line.item_id} in this plan"
            )
        turned[line.item_id] = turned.get(line.item_id, 0) + line.quantity
        if turned[line.item_id] > allocated[line.item_id]:
            return f"rejected.{n}.quantity", (
                f"household {delivery.household_id} was allocated {allocated[line.item_id]} "
                f"of {line.item_id}, fewer than the {turned[line.item_id]} turned back"
            )
    return None


async def record_unit(
    uow: UnitOfWork, *, plan_id: uuid.UUID, unit_id: uuid.UUID, data: schemas.UnitDelivery
) -> schemas.DeliveryResult:
    """One confirmation for every household of the unit: those not delivered yet when it was
    first received (a resend finds them recorded and changes nothing), except those kept for
    a standing reason (refused, moved, unit_sealed), reported in ``kept``. A cancelled plan
    refuses it (409) unless it is a resend."""
    plan = await get_plan(uow, plan_id, lock="share")
    DELIVER.check_role(uow)
    households = await repository.unit_households(uow, plan=plan, unit_id=unit_id)
    if not households:
        raise NotFound.on("unit_id", f"no household of unit {unit_id} in this plan in your scope")
    DELIVER.check(uow, _place(households[0]), field="unit_id")
    keys = [(data.client_ref, h.household_id) for h in households]
    before = await repository.seen(uow, plan_id=plan.id, keys=keys)
    if before:
        # This confirmation was received before: the unit's households as they are now.
        changed = 0
    else:
        refuse_if_cancelled(plan)
        if misdated := _misdated(data, plan=plan, settings=uow.settings):
            raise Invalid.on("at", misdated)
        common = data.model_dump(exclude={"client_ref"})
        open_ = [
            h
            for h in households
            if h.status != AllocationStatus.delivered.value and h.reason not in STANDING
        ]
        ref = data.client_ref
        batch = [
            (schemas.DeliveryIn(**common, client_ref=ref, household_id=h.household_id), h)
            for h in open_
        ]
        changed = await _apply(uow, plan, batch)
    states = await repository.unit_households(uow, plan=plan, unit_id=unit_id)
    # Read again after the change, so a resend reports the same households kept.
    kept = [
        s for s in states if s.status != AllocationStatus.delivered.value and s.reason in STANDING
    ]
    return schemas.DeliveryResult(
        changed=changed,
        unchanged=len(households) - changed - len(kept),
        households=[schemas.HouseholdState.model_validate(s, from_attributes=True) for s in states],
        errors=[],
        kept=[schemas.HouseholdState.model_validate(s, from_attributes=True) for s in kept],
    )


async def _apply(
    uow: UnitOfWork, plan: DistributionPlan, fresh: list[tuple[schemas.DeliveryIn, Any]]
) -> int:
    """Record the confirmations and change their households' state, set-based per outcome;
    one event for the request. Returns how many were applied (a concurrent resend may have
    recorded some first)."""
    if not fresh:
        return 0
    now = datetime.now(UTC)
    # Only a failed try can be overtaken: a batch of deliveries reads nothing more.
    failed = [d.household_id for d, _ in fresh if d.outcome != "delivered"]
    tried = await repository.last_tried(uow, plan_id=plan.id, household_ids=failed)
    rows = [
        {
            "id": uuid.uuid4(),
            "plan_id": plan.id,
            "household_id": d.household_id,
            "unit_id": h.unit_id,
            "client_ref": d.client_ref,
            "outcome": d.outcome,
            "reason": d.reason,
            "received_by": d.received_by,
            "photo_ref": d.photo_ref,
            "code": d.code,
            "rejected": [r.model_dump(mode="json") for r in d.rejected],
            "recorded_by": uow.principal.username,
            "at": d.at,
            "recorded_at": now,
            **_place(h).columns(),
        }
        for d, h in fresh
    ]
    inserted = await repository.record(uow, rows)
    applied = [(d, h) for d, h in fresh if (d.client_ref, d.household_id) in inserted]
    groups: dict[tuple[tuple[str, Any], ...], list[uuid.UUID]] = {}
    for d, h in applied:
        if _overtaken(d, tried.get(d.household_id)):
            continue
        state = tuple(sorted(_state(d, h).items()))
        groups.setdefault(state, []).append(d.household_id)
    for state, household_ids in groups.items():
        await repository.set_state(uow, plan=plan, household_ids=household_ids, values=dict(state))
    await _issue(uow, plan, [(d, h) for d, h in applied if d.outcome == "delivered"])
    if applied:
        compounds = {h.compound_id for _, h in applied}
        uow.emit(
            DeliveriesRecorded(
                plan_id=plan.id,
                town_id=plan.town_id,
                compound_id=compounds.pop() if len(compounds) == 1 else None,
                deliveries=[
                    DeliveryRecord(
                        household_id=d.household_id,
                        building_id=h.building_id,
                        unit_id=h.unit_id,
                        outcome=d.outcome,
                        reason=d.reason,
                        rejected=[
                            ItemQuantity(item_id=r.item_id, quantity=r.quantity) for r in d.rejected
                        ],
                        at=d.at,
                    )
                    for d, h in applied
                ],
            ),
            compound_id=plan.compound_id,
        )
    return len(applied)


def _overtaken(delivery: schemas.DeliveryIn, last: datetime | None) -> bool:
    """A failed try that happened before one already recorded (a phone offline since, its
    confirmation arriving late) is kept in the history but leaves the household's state as
    the later try set it. A delivery always applies: the goods were handed over."""
    if delivery.outcome == "delivered" or last is None:
        return False
    return delivery.at < (last if last.tzinfo else last.replace(tzinfo=UTC))


async def _issue(
    uow: UnitOfWork, plan: DistributionPlan, delivered: list[tuple[schemas.DeliveryIn, Any]]
) -> None:
    """What the delivered households accepted leaves their compound's store: reserved →
    issued, one issue line per household; what they turned back is released (a
    not-delivered household keeps its reservation). Holders in ascending order, as
    reservations lock them."""
    if not delivered:
        return
    received = await repository.allocated(
        uow, plan=plan, household_ids=[h.household_id for _, h in delivered]
    )
    kits = await kits_of(uow, plan)
    # Each kit's items read once for the whole confirmation, not once per household.
    parts: dict[uuid.UUID, list[tuple[uuid.UUID, Decimal]]] = {}
    by_holder: dict[uuid.UUID, list[Recipient]] = {}
    for d, h in delivered:
        turned: dict[uuid.UUID, int] = {}
        for line in d.rejected:
            turned[line.item_id] = turned.get(line.item_id, 0) + line.quantity
        allocated = received.get(h.household_id, {})
        kept = {i: q - turned.get(i, 0) for i, q in allocated.items() if q > turned.get(i, 0)}
        accepted = await in_stock_items(uow, kits=kits, quantities=kept, parts=parts)
        returned = await in_stock_items(uow, kits=kits, quantities=turned, parts=parts)
        recipient = Recipient(
            household_id=h.household_id,
            building_id=h.building_id,
            lines=[(item_id, quantity) for _, item_id, quantity in accepted],
            returned=[(item_id, quantity) for _, item_id, quantity in returned],
        )
        by_holder.setdefault(h.compound_id, []).append(recipient)
    reference = Reference(kind="plan", id=plan.id, label=plan.name)
    for holder_id, recipients in sorted(by_holder.items()):
        await issue_delivered(uow, holder_id=holder_id, reference=reference, recipients=recipients)


async def follow_zones(uow: UnitOfWork, event: Event) -> None:
    """After the directory applied a registry event: door delivery in every building whose
    zones it concerned follows them as the directory now holds them, so the order and
    re-syncs are the directory's (an old zone change arriving late changes nothing)."""
    now = datetime.now(UTC)
    match event:
        case registry.ZoneChanged(building_id=building_id, at=at):
            await repository.follow_zones(uow, building_ids=[building_id], at=at)
        case registry.ZonesSnapshot(zones=zones):
            buildings = sorted({z.building_id for z in zones})
            await repository.follow_zones(uow, building_ids=buildings, at=now)
        case registry.SnapshotCompleted():
            # A re-sync may have dropped zones gone from the registry.
            buildings = sorted(set(await uow.session.scalars(repository.sealed_buildings())))
            await repository.follow_zones(uow, building_ids=buildings, at=now)
        case _:
            return


async def on_event(uow: UnitOfWork, envelope: Envelope) -> None:
    """A confirmed case's household gets door delivery (consumer of testing events)."""
    match envelope.event():
        case CaseConfirmed(household_id=household_id) as case if household_id is not None:
            await _case_household(uow, case, household_id)
        case _:
            return


async def _case_household(uow: UnitOfWork, case: CaseConfirmed, household_id: uuid.UUID) -> None:
    """Remember the household (plans made later send it to the door too) and move its
    pending allocations to the door."""
    row = {
        "household_id": household_id,
        "case_id": case.case_id,
        "confirmed_at": case.confirmed_at,
        "town_id": case.town_id,
        "committee_id": None,
        "compound_id": case.compound_id,
        "building_id": case.building_id,
    }
    table = table_of(CaseHousehold)
    await uow.session.execute(insert_ignoring_duplicates(table, uow.dialect), [row])
    await repository.to_door_for_case(uow, household_id=household_id)
