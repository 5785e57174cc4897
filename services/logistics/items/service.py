"""The town's item catalogue and kits (a supply package: rice 5 kg, oil 1 bottle, ...).
Placed at the town: every store of the town counts in the same items."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

from services.logistics.items import schemas
from services.logistics.models import Item, Kit, KitLine
from services.logistics.stock.quantities import of_milli, to_milli
from shared.authz import Place, Role, policy
from shared.problems import Invalid, NotFound
from shared.uow import UnitOfWork

# One catalogue per town, kept by the town office (and its service accounts).
CATALOGUE = policy("items", "keep the catalogue", Role.town_operator, Role.service)


def _town(uow: UnitOfWork, town_id: uuid.UUID) -> Place:
    CATALOGUE.check_role(uow)
    if not uow.scope.allows(town_id=town_id):
        raise NotFound.on("town_id", f"no town {town_id} in your scope")
    place = Place(town_id)
    CATALOGUE.check(uow, place, field="town_id")
    return place


async def create_item(uow: UnitOfWork, *, data: schemas.ItemCreate) -> Item:
    place = _town(uow, data.town_id)
    item = Item(
        **place.columns(),
        name=data.name,
        unit=data.unit.value,
        category=data.category,
        perishable=data.perishable,
        created_at=datetime.now(UTC),
    )
    uow.session.add(item)
    await uow.session.flush()
    return item


async def create_kit(uow: UnitOfWork, *, data: schemas.KitCreate) -> schemas.KitOut:
    place = _town(uow, data.town_id)
    ids = [line.item_id for line in data.lines]
    if len(set(ids)) != len(ids):
        raise Invalid.on("lines", "name each item once per kit")
    found = {
        i.id: i
        for i in await uow.session.scalars(
            select(Item).where(Item.id.in_(ids), Item.town_id == data.town_id)
        )
    }
    errors = [
        {"field": f"lines.{n}.item_id", "message": f"no item {item_id} in your scope"}
        for n, item_id in enumerate(ids)
        if item_id not in found
    ]
    if errors:
        raise NotFound(errors[0]["message"], errors=errors)
    kit = Kit(**place.columns(), name=data.name, created_at=datetime.now(UTC))
    uow.session.add(kit)
    await uow.session.flush()
    lines = [
        KitLine(
            **place.columns(),
            kit_id=kit.id,
            item_id=line.item_id,
            quantity=to_milli(line.quantity, field=f"lines.{n}.quantity", item=found[line.item_id]),
        )
        for n, line in enumerate(data.lines)
    ]
    uow.session.add_all(lines)
    await uow.session.flush()
    return (await kits_out(uow, [kit]))[0]


async def kits_out(uow: UnitOfWork, kits: Sequence[Kit]) -> list[schemas.KitOut]:
    query = (
        select(KitLine, Item)
        .join(Item, Item.id == KitLine.item_id)
        .where(KitLine.kit_id.in_([k.id for k in kits]))
        .order_by(Item.name)
    )
    lines: dict[uuid.UUID, list[schemas.KitLineOut]] = defaultdict(list)
    for line, item in (await uow.session.execute(query)).all():
        lines[line.kit_id].append(
            schemas.KitLineOut(
                item_id=item.id, item=item.name, unit=item.unit, quantity=of_milli(line.quantity)
            )
        )
    return [
        schemas.KitOut(
            id=k.id, town_id=k.town_id, name=k.name, created_at=k.created_at, lines=lines[k.id]
        )
        for k in kits
    ]


async def expand(
    uow: UnitOfWork, *, kit_id: uuid.UUID, count: int = 1
) -> list[tuple[uuid.UUID, Decimal]]:
    """A kit's items times ``count`` in their units: the lines a plan reserves for its kits
    (``reservations.service.reserve(..., lines=...)``)."""
    await uow.get(Kit, kit_id, what="kit", field="kit_id")
    query = select(KitLine.item_id, KitLine.quantity).where(KitLine.kit_id == kit_id)
    rows = (await uow.session.execute(query)).all()
    return [(item_id, of_milli(quantity * count)) for item_id, quantity in rows]
