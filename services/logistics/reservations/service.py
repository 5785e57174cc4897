"""Reservations: stock promised to a distribution plan or a help request, the API plans
call. Stable; every function takes a unit of work and never commits.

- :func:`reserve` — reserve quantities of items at one holder, earliest expiry first across
  batches (FEFO; expired batches are skipped), all or nothing: 409 naming each short item,
  by how much and where ("short by 12 kg of rice at compound C03").
- :func:`release` — give back what a reference still holds (all, or some per item).
- :func:`issue_reserved` — reserved → issued (delivered): off the holder's card as an issue
  to the reference, optionally naming the building the goods went to (the donation register
  traces donated batches there).
- :func:`issue_delivered` — the same for the households a plan delivered to, one issue line
  per household and batch, authorised by the delivery's confirmation.

Correct under concurrency on both backends: each call first locks the holder
(``stock_holders`` row: an UPDATE, so PostgreSQL holds the row lock until the commit and a
second plan reserving at that holder waits, then reads what the first left; SQLite
serialises writers), and every batch moves with a conditional UPDATE that cannot take it
below zero or below its reservations (CHECK constraints stand behind that). A unit of work
that reserves at several holders should call in ascending ``holder_id`` order, so two plans
over the same compounds never wait on each other in a cycle.

The caller must manage the holder (policy ``stock: manage``: town operators, committee
staff for their compounds' stores, services)."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from sqlalchemy import select

from services.logistics.models import (
    Batch,
    DirectoryPlace,
    DistributionPlan,
    EntryKind,
    HelpRequest,
    Holder,
    Item,
    Reservation,
)
from services.logistics.plans.cancelled import refuse_if_cancelled
from services.logistics.stock import repository
from services.logistics.stock.quantities import amount, of_milli, to_milli, where
from services.logistics.stock.service import (
    MANAGE,
    catalogue_items,
    entry,
    fefo,
    holder,
    managed_holder,
    move,
    place_of,
    shortage,
)
from shared.ids import new_id
from shared.problems import Conflict, Invalid
from shared.uow import UnitOfWork

ReferenceKind = Literal["plan", "request"]


@dataclass(frozen=True)
class Reference:
    """What stock is reserved or issued for: a distribution plan or a help request
    (``label``: how people know it, shown in the donation register)."""

    kind: ReferenceKind
    id: uuid.UUID
    label: str = ""


# The name the distribution plans use.
PlanRef = Reference


@dataclass(frozen=True)
class Reserved:
    """A quantity of one batch held for a reference (or, from :func:`issue_reserved` and
    :func:`release`, issued or released from it)."""

    reservation_id: uuid.UUID
    item_id: uuid.UUID
    batch_id: uuid.UUID
    batch: str
    expires_on: date | None
    quantity: Decimal


Line = tuple[uuid.UUID, Decimal | int]


def _merged(
    lines: Sequence[Line], items: dict[uuid.UUID, Item] | None = None
) -> dict[uuid.UUID, int]:
    """Quantities per item in thousandths (an item named twice counts twice), in order; with
    ``items``, a fraction of one counted whole is refused too."""
    wanted: dict[uuid.UUID, int] = defaultdict(int)
    for n, (item_id, quantity) in enumerate(lines):
        field = f"lines.{n}.quantity"
        milli = to_milli(quantity, field=field, item=items[item_id] if items else None)
        if milli <= 0:
            raise Invalid.on(field, f"{quantity} is not a quantity to take: give more than 0")
        wanted[item_id] += milli
    return dict(wanted)


def _field_of(lines: Sequence[Line], item_id: uuid.UUID) -> str:
    n = next(n for n, (named, _) in enumerate(lines) if named == item_id)
    return f"lines.{n}.quantity"


async def reserve(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID,
    lines: Sequence[Line],
    reference: Reference,
    today: date | None = None,
) -> list[Reserved]:
    """Reserve ``lines`` — (item_id, quantity in the item's unit) — at the holder (a
    compound's id: its store; the town's id: the warehouse) for ``reference``. Takes the
    earliest-expiring unexpired batches first; all lines or none. Raises ``Conflict`` (409)
    whose ``errors`` name each short line (``field`` ``lines.N.quantity``, ``item_id``,
    ``holder_id``, ``short``, ``unit``, ``message``: "short by 12 kg of rice at compound
    C03"); ``NotFound`` (404) for a holder or item the caller cannot see; ``Forbidden``
    (403) when the caller does not manage the holder."""
    found = await managed_holder(uow, holder_id)
    items = await catalogue_items(uow, found, [item_id for item_id, _ in lines])
    wanted = _merged(lines, items)
    await repository.lock_holder(uow, found.id)
    usable_on = today or uow.settings.today()
    batches = await repository.batches(
        uow, holder_id=found.id, item_ids=list(wanted), usable_on=usable_on
    )
    takes, short = fefo(batches, wanted)
    if short:
        raise shortage([(_field_of(lines, i), items[i], left) for i, left in short.items()], found)
    made = []
    now = datetime.now(UTC)
    for batch, quantity in takes:
        await move(uow, batch, reserved=quantity)
        reservation = Reservation(
            **place_of(found).columns(),
            id=new_id(),
            holder_id=found.id,
            item_id=batch.item_id,
            batch_id=batch.id,
            reference_kind=reference.kind,
            reference_id=reference.id,
            reference_label=reference.label,
            held=quantity,
            issued=0,
            released=0,
            created_at=now,
        )
        uow.session.add(reservation)
        made.append(_out(reservation, batch, quantity))
    await uow.session.flush()
    return made


def _out(reservation: Reservation, batch: Batch, quantity: int) -> Reserved:
    return Reserved(
        reservation_id=reservation.id,
        item_id=batch.item_id,
        batch_id=batch.id,
        batch=batch.batch,
        expires_on=batch.expires_on,
        quantity=of_milli(quantity),
    )


async def _held(
    uow: UnitOfWork, *, holder: Holder, reference: Reference
) -> list[tuple[Reservation, Batch]]:
    """The reference's reservations at the holder still holding stock, FEFO."""
    query = (
        select(Reservation, Batch)
        .join(Batch, Batch.id == Reservation.batch_id)
        .where(
            Reservation.holder_id == holder.id,
            Reservation.reference_kind == reference.kind,
            Reservation.reference_id == reference.id,
            Reservation.held > 0,
        )
        .order_by(Batch.expires_on.asc().nulls_last(), Batch.received_at, Batch.id)
        .execution_options(**repository.FRESH)
    )
    return [(r, b) for r, b in (await uow.session.execute(query)).all()]


def _walk(
    held: list[tuple[Reservation, Batch]], wanted: dict[uuid.UUID, int], left: dict[uuid.UUID, int]
) -> tuple[list[tuple[Reservation, Batch, int]], dict[uuid.UUID, int]]:
    """Take ``wanted`` (thousandths per item) from the reservations in their order, out of
    what each has ``left`` (lowered as it goes); returns the takes and what is short."""
    takes = []
    short: dict[uuid.UUID, int] = {}
    for item_id, quantity in wanted.items():
        need = quantity
        for reservation, batch in held:
            have = left[reservation.id]
            if reservation.item_id == item_id and need > 0 and have > 0:
                take = min(need, have)
                takes.append((reservation, batch, take))
                left[reservation.id] -= take
                need -= take
        if need > 0:
            short[item_id] = need
    return takes, short


async def _take_held(
    uow: UnitOfWork,
    *,
    holder: Holder,
    reference: Reference,
    lines: Sequence[Line] | None,
) -> list[tuple[Reservation, Batch, int]]:
    """What to take from which reservation: all that is held, or the quantities per item;
    409 when the reference holds less than asked."""
    held = await _held(uow, holder=holder, reference=reference)
    if lines is None:
        return [(r, b, r.held) for r, b in held]
    takes, short = _walk(held, _merged(lines), {r.id: r.held for r, _ in held})
    shorts = [(_field_of(lines, item_id), item_id, left) for item_id, left in short.items()]
    if shorts:
        items: dict[uuid.UUID, Item] = await repository.items(uow, [s[1] for s in shorts])
        whose = f"{reference.kind} {reference.label or reference.id}"
        messages = [
            f"{amount(left, items[item_id])} more than {whose} holds at {where(holder)}"
            for _, item_id, left in shorts
        ]
        errors: list[dict[str, object]] = [
            {
                "field": field,
                "message": message,
                "item_id": str(item_id),
                "short": float(of_milli(left)),
            }
            for (field, item_id, left), message in zip(shorts, messages, strict=True)
        ]
        raise Conflict("; ".join(messages), errors=errors)
    return takes


async def release(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID,
    reference: Reference,
    lines: Sequence[Line] | None = None,
) -> list[Reserved]:
    """Give back what ``reference`` holds at the holder: everything (a cancelled plan), or
    the quantities per item in ``lines`` (a smaller household). 409 when it holds less."""
    found = await managed_holder(uow, holder_id)
    await repository.lock_holder(uow, found.id)
    released = []
    for reservation, batch, quantity in await _take_held(
        uow, holder=found, reference=reference, lines=lines
    ):
        await move(uow, batch, reserved=-quantity)
        reservation.held -= quantity
        reservation.released += quantity
        released.append(_out(reservation, batch, quantity))
    await uow.session.flush()
    return released


async def issue_reserved(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID,
    reference: Reference,
    lines: Sequence[Line] | None = None,
    building_id: uuid.UUID | None = None,
    note: str = "",
) -> list[Reserved]:
    """Reserved → issued: the goods left the store for ``reference`` (delivered to a
    household, handed to a volunteer). Everything it holds, or the quantities per item in
    ``lines``; ``building_id`` records where they went. Each batch's issue is a line on the
    holder's card (kind ``issue``, naming the reference), which the donation register
    follows. 409 when the reference holds less than asked."""
    found = await managed_holder(uow, holder_id)
    version = await repository.lock_holder(uow, found.id)
    document_id, now = new_id(), datetime.now(UTC)
    issued = []
    for reservation, batch, quantity in await _take_held(
        uow, holder=found, reference=reference, lines=lines
    ):
        await move(uow, batch, on_hand=-quantity, reserved=-quantity)
        reservation.held -= quantity
        reservation.issued += quantity
        _issue_line(
            uow,
            holder=found,
            batch=batch,
            quantity=quantity,
            document_id=document_id,
            version=version,
            at=now,
            reference=reference,
            to_building_id=building_id,
            note=note,
        )
        issued.append(_out(reservation, batch, quantity))
    await uow.session.flush()
    return issued


def _issue_line(
    uow: UnitOfWork,
    *,
    holder: Holder,
    batch: Batch,
    quantity: int,
    document_id: uuid.UUID,
    version: int,
    at: datetime,
    reference: Reference,
    **to: object,
) -> None:
    """The card's line for goods issued to ``reference`` (where they went: ``to``)."""
    entry(
        uow,
        holder=holder,
        batch=batch,
        kind=EntryKind.issue,
        quantity=-quantity,
        document_id=document_id,
        version=version,
        at=at,
        reference_kind=reference.kind,
        reference_id=reference.id,
        reference_label=reference.label,
        **to,
    )


@dataclass(frozen=True)
class Recipient:
    """A household goods were delivered to (and its building), with what it accepted and
    what it turned back: (item_id, quantity in the item's unit) per stocked item."""

    household_id: uuid.UUID
    building_id: uuid.UUID | None
    lines: Sequence[Line]
    returned: Sequence[Line] = ()


async def issue_delivered(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID,
    reference: Reference,
    recipients: Sequence[Recipient],
) -> list[Reserved]:
    """Reserved → issued for the households a plan delivered to: one issue line on the
    holder's card per household and batch, naming the household and its building (FEFO
    within what the plan holds); what a household turned back is released. The
    confirmation of the delivery authorises it (the caller checked ``deliveries: confirm``
    on each household): a building leader confirms, the store's card follows, though the
    leader does not manage the store. 409 when the plan holds less than a household
    received."""
    found = await holder(uow, holder_id)
    version = await repository.lock_holder(uow, found.id)
    held = await _held(uow, holder=found, reference=reference)
    left = {r.id: r.held for r, _ in held}
    document_id, now = new_id(), datetime.now(UTC)
    issued = []
    out_of: dict[uuid.UUID, int] = defaultdict(int)
    back: dict[uuid.UUID, int] = defaultdict(int)
    batches: dict[uuid.UUID, Batch] = {}
    for recipient in recipients:
        gone, short_back = _walk(held, _merged(recipient.returned), left)
        for reservation, batch, quantity in gone:
            reservation.held -= quantity
            reservation.released += quantity
            back[batch.id] += quantity
            batches[batch.id] = batch
        takes, short = _walk(held, _merged(recipient.lines), left)
        short |= short_back
        if short:
            whose = f"{reference.kind} {reference.label or reference.id}"
            raise Conflict(
                f"{whose} holds less at {where(found)} than household "
                f"{recipient.household_id} received"
            )
        for reservation, batch, quantity in takes:
            reservation.held -= quantity
            reservation.issued += quantity
            out_of[batch.id] += quantity
            batches[batch.id] = batch
            _issue_line(
                uow,
                holder=found,
                batch=batch,
                quantity=quantity,
                document_id=document_id,
                version=version,
                at=now,
                reference=reference,
                to_building_id=recipient.building_id,
                to_household_id=recipient.household_id,
            )
            issued.append(_out(reservation, batch, quantity))
    for batch_id, quantity in out_of.items():
        await move(uow, batches[batch_id], on_hand=-quantity, reserved=-quantity)
    for batch_id, quantity in back.items():
        await move(uow, batches[batch_id], reserved=-quantity)
    await uow.session.flush()
    return issued


async def _known(
    uow: UnitOfWork, *, reference: Reference, building_id: uuid.UUID | None
) -> uuid.UUID | None:
    """The plan or request named exists in the caller's scope (not cancelled: 409 naming
    ``reference_id``, saying when and why), and so does the building.
    Returns the building the goods went to: a request's goods go to its resident's building
    (named or not; another one is a 422 naming ``building_id``)."""
    if reference.kind == "plan":
        plan = await uow.get(
            DistributionPlan, reference.id, what="distribution plan", field="reference_id"
        )
        # Shared, as deliveries take it: an issue racing a cancellation finds it cancelled.
        await uow.session.refresh(plan, with_for_update={"read": True})
        refuse_if_cancelled(plan, field="reference_id")
        request = None
    else:
        request = await uow.get(
            HelpRequest, reference.id, what="help request", field="reference_id"
        )
        # Shared, as a plan's: an issue racing the request's cancellation finds it cancelled.
        await uow.session.refresh(request, with_for_update={"read": True})
        if request.cancelled_at is not None:
            raise Conflict.on(
                "reference_id",
                f"help request {request.id} was cancelled at "
                f"{request.cancelled_at:%Y-%m-%d %H:%M} UTC: {request.cancel_reason}; nothing "
                "is issued for it",
            )
    if building_id is not None:
        place = DirectoryPlace
        building = place.kind == "building"
        await uow.get(place, building_id, what="building", field="building_id", where=building)
    if request is None or request.building_id is None:
        return building_id
    if building_id is not None and building_id != request.building_id:
        raise Invalid.on(
            "building_id",
            f"help request {request.id} is for building {request.building_id}, not "
            f"{building_id}: its goods go to its resident",
        )
    return request.building_id


async def issue_now(
    uow: UnitOfWork,
    *,
    holder_id: uuid.UUID,
    lines: Sequence[Line],
    reference: Reference,
    building_id: uuid.UUID | None = None,
    note: str = "",
) -> list[Reserved]:
    """Hand goods out at once (a help request's formula tin): reserve, earliest expiry
    first, and issue in the same unit of work; 409 naming what is short. The plan or
    request it is for, and the building the goods went to, must be ones the caller sees:
    404 naming ``reference_id`` (``building_id``) otherwise, and nothing leaves the shelf
    (the donation register would trace goods to nobody)."""
    MANAGE.check_role(uow)
    building_id = await _known(uow, reference=reference, building_id=building_id)
    await reserve(uow, holder_id=holder_id, lines=lines, reference=reference)
    return await issue_reserved(
        uow,
        holder_id=holder_id,
        reference=reference,
        lines=lines,
        building_id=building_id,
        note=note,
    )
