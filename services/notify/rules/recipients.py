"""What each rule makes of its event: the template's values and who receives it.

Payloads are read defensively (``payload.get``): the logistics events are bound by type name
and read by the fields their contracts name today (``request_id``, ``kind``, ``building_id``,
``assignee_id``, ``resident_id``, ``due_at``, ``grid_ids``, ``escalated_to``; ``name``,
``compound_id``, ``households``), and an event without what a rule needs makes no message
rather than failing for ever in the consumer."""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, and_, or_, select

from services.notify.contacts import service as contacts
from services.notify.contacts.service import Reach
from services.notify.models import DirectoryGridBuilding, DirectoryPlace, DirectoryResident
from services.notify.templates.glossary import values_of
from services.notify.templates.render import ZONE_LEVELS, showable
from shared.directory.tables import PlaceRow
from shared.events import read_instant
from shared.uow import UnitOfWork

_UUID = TypeAdapter(uuid.UUID)


class Unusable(ValueError):
    """The event lacks what the rule needs (a field missing or malformed)."""


@dataclass
class Target:
    values: dict[str, Any]
    reach: Reach


def _id(payload: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return _UUID.validate_python(payload.get(name))
    except ValidationError:
        raise Unusable(f"no {name}") from None


def _maybe_id(payload: dict[str, Any], name: str) -> uuid.UUID | None:
    return None if payload.get(name) is None else _id(payload, name)


def _moment(payload: dict[str, Any], name: str) -> datetime:
    try:
        moment = read_instant(payload.get(name))
    except ValidationError:
        raise Unusable(f"no {name}") from None
    try:
        return showable(moment)
    except ValueError as exc:
        raise Unusable(f"{name} {exc}") from None


def _ids(payload: dict[str, Any], name: str) -> list[uuid.UUID]:
    values = payload.get(name) or []
    if not isinstance(values, list):
        raise Unusable(f"{name} is not a list")
    try:
        return [_UUID.validate_python(v) for v in values]
    except ValidationError:
        raise Unusable(f"{name} holds something other than ids") from None


async def _names(uow: UnitOfWork, *ids: uuid.UUID | None) -> dict[uuid.UUID, PlaceRow]:
    wanted = [i for i in ids if i is not None]
    rows = await uow.session.scalars(select(DirectoryPlace).where(DirectoryPlace.id.in_(wanted)))
    return {p.id: p for p in rows}


async def area(
    uow: UnitOfWork,
    *,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    unit_id: uuid.UUID | None = None,
) -> str:
    """A place as a text can name it: "Compound name 3-2" (building 3, unit 2)."""
    places = await _names(uow, compound_id, building_id, unit_id)
    parts = [places[i].code for i in (building_id, unit_id) if i in places]
    compound = places[compound_id].name if compound_id in places else ""
    return " ".join(p for p in (compound, "-".join(parts)) if p) or "-"


def _request(payload: dict[str, Any]) -> str:
    """The request's kind, shown by the templates as a word (``request_kind``); a kind the
    glossary does not know yet (added to the contract later) reads as "other"."""
    kind = payload.get("kind")
    return kind if kind in values_of("request_kind") else "other"


def _round_where(payload: dict[str, Any], town_id: uuid.UUID) -> ColumnElement[bool]:
    scope = payload.get("scope")
    if not isinstance(scope, dict):
        raise Unusable("no scope")
    kind, ids = scope.get("kind"), _ids(scope, "ids")
    r = DirectoryResident
    in_town = r.town_id == town_id
    match kind:
        case "town":
            return in_town
        case "compounds":
            return and_(in_town, r.compound_id.in_(ids))
        case "buildings":
            return and_(in_town, r.building_id.in_(ids))
        case "units":
            return and_(in_town, r.unit_id.in_(ids))
        case "zone_level" if scope.get("zone_level") in ZONE_LEVELS:
            return and_(in_town, contacts.in_zone_level(scope["zone_level"]))
    raise Unusable(f"a round scope of kind {kind!r}")


async def round_scheduled(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    where = _round_where(payload, _id(payload, "town_id"))
    values = {
        "round": str(payload.get("name") or "-"),
        "start": _moment(payload, "starts_at"),
        "end": _moment(payload, "ends_at"),
    }
    reach, _ = await contacts.residents(uow, where, optional=optional)
    return Target(values, reach)


async def pool_positive(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    members = contacts.with_ids(_ids(payload, "member_ids"))
    reach, _ = await contacts.residents(uow, members, optional=optional)
    return Target({"time": _moment(payload, "resulted_at")}, reach)


async def case_confirmed(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    town_id, compound_id = _id(payload, "town_id"), _id(payload, "compound_id")
    building_id = _maybe_id(payload, "building_id")
    places = await _names(uow, compound_id, building_id)
    committee_id = places[compound_id].committee_id if compound_id in places else None
    where = contacts.town_staff(town_id)
    if committee_id is not None:
        where = or_(where, contacts.staff_of_committee(committee_id))
    values = {
        "compound": places[compound_id].name if compound_id in places else "-",
        "building": places[building_id].code if building_id in places else "-",
        "time": _moment(payload, "confirmed_at"),
    }
    return Target(values, await contacts.people(uow, where))


async def zone_changed(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    building_id, unit_id = _id(payload, "building_id"), _maybe_id(payload, "unit_id")
    if (payload.get("to_level") or "lifted") not in ZONE_LEVELS:
        raise Unusable(f"no zone level {payload.get('to_level')!r}")
    values = {
        "area": await area(
            uow,
            compound_id=_maybe_id(payload, "compound_id"),
            building_id=building_id,
            unit_id=unit_id,
        ),
        "level": payload.get("to_level") or "lifted",
        "time": _moment(payload, "at"),
    }
    # A building's zone reaches the units that have none of their own: a unit zoned apart
    # keeps its level (its residents were told of it, and are told again when it changes).
    # The event names those units as the registry saw them; this service's copy of the
    # zones, fed by another consumer, may not have caught up yet.
    if unit_id is not None:
        where = contacts.in_area(building_id=building_id, unit_id=unit_id)
    elif payload.get("units_apart") is not None:
        where = contacts.in_building_zone(building_id, apart=_ids(payload, "units_apart"))
    else:
        where = contacts.in_building_zone(building_id)
    reach, _ = await contacts.residents(uow, where, optional=optional)
    return Target(values, reach)


async def _request_values(uow: UnitOfWork, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "request": _request(payload),
        "area": await area(
            uow,
            compound_id=_maybe_id(payload, "compound_id"),
            building_id=_maybe_id(payload, "building_id"),
        ),
        "due": _moment(payload, "due_at"),
    }


async def request_assigned(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    values = await _request_values(uow, payload)
    assignee = _maybe_id(payload, "assignee_id")
    if assignee is None:
        # Given to a team, not a person: nobody to text.
        return Target(values, Reach())
    return Target(values, await contacts.people(uow, contacts.person(assignee)))


async def request_done(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    resident = contacts.with_ids([_id(payload, "resident_id")])
    reach, _ = await contacts.residents(uow, resident, optional=optional)
    return Target({"request": _request(payload)}, reach)


async def request_overdue(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    values = await _request_values(uow, payload)
    escalated = payload.get("escalated_to")
    if escalated == "compound":
        # The first notice: the volunteer running it, or the compound's staff when nobody is.
        if (assignee := _maybe_id(payload, "assignee_id")) is not None:
            return Target(values, await contacts.people(uow, contacts.person(assignee)))
        compound_id = _id(payload, "compound_id")
        places = await _names(uow, compound_id)
        committee_id = places[compound_id].committee_id if compound_id in places else None
        return Target(values, await contacts.people(uow, contacts.staff_of_committee(committee_id)))
    if escalated == "town_operator":
        # The third notice: the town office's staff on duty (as for an overdue transfer).
        return Target(
            values, await contacts.people(uow, contacts.town_staff(_id(payload, "town_id")))
        )
    if escalated is not None and escalated != "grid_leader":
        raise Unusable(f"an escalation to {escalated!r}")
    grids = _ids(payload, "grid_ids")
    building_id = _maybe_id(payload, "building_id")
    if not grids and building_id is not None:
        query = select(DirectoryGridBuilding.grid_id).where(
            DirectoryGridBuilding.building_id == building_id
        )
        grids = list(await uow.session.scalars(query))
    return Target(values, await contacts.people(uow, contacts.leading_grids(grids)))


async def distribution_planned(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    """A plan's notice to the compound's building leaders: planned (its households), or
    cancelled (the households it had not delivered yet)."""
    compound_id = _id(payload, "compound_id")
    households = payload.get("households")
    values = {
        "plan": str(payload.get("name") or "-"),
        "count": households if isinstance(households, int) else 0,
    }
    return Target(values, await contacts.people(uow, contacts.leading_buildings_of(compound_id)))


async def transfer_overdue(uow: UnitOfWork, payload: dict[str, Any], optional: bool) -> Target:
    compound_id = _id(payload, "compound_id")
    places = await _names(uow, compound_id)
    values = {
        "compound": places[compound_id].name if compound_id in places else "-",
        "due": _moment(payload, "due_at"),
    }
    return Target(values, await contacts.people(uow, contacts.town_staff(_id(payload, "town_id"))))


Resolver = Callable[[UnitOfWork, dict[str, Any], bool], Awaitable[Target]]
RESOLVERS: dict[str, Resolver] = {
    "round_scheduled": round_scheduled,
    "pool_positive": pool_positive,
    "case_confirmed": case_confirmed,
    "zone_sealed": zone_changed,
    "zone_changed": zone_changed,
    "request_assigned": request_assigned,
    "request_done": request_done,
    "request_overdue": request_overdue,
    "distribution_planned": distribution_planned,
    "distribution_cancelled": distribution_planned,
    "transfer_overdue": transfer_overdue,
}


def applies(rule_key: str, payload: dict[str, Any]) -> bool:
    """Whether a rule of the event's type takes this event (a seal and other zone changes
    go to different rules)."""
    if rule_key == "zone_sealed":
        return payload.get("to_level") == "sealed"
    if rule_key == "zone_changed":
        return payload.get("to_level") != "sealed"
    return True
