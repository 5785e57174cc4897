"""The authorization matrix, generated from the served OpenAPI document.

Every operation of every service × every role (town operator and service account of another
town; committee staff, grid leader, building leader and volunteer of committee A) is called on
the objects of committee B (and, for the narrow roles, of another building of their own
compound). A write must answer 403 or 404 and change no row of either service (outbox and
inbox included); a read may answer 200 only without any of those objects in it, and every list
a role can read must be the same before and after B's objects exist (so none is counted).

A new endpoint is covered without editing this file: path and query parameters are filled
with the foreign objects' ids by name, and request bodies are built from the OpenAPI schema.
Where a schema needs more than its types say, ``EXAMPLES`` (per schema) or ``FILES`` (per
upload) gives it; an operation for which neither works FAILS the test instead of being skipped.
"""

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cordon.platform import Platform
from services.logistics.models import directory as LogisticsDirectory
from services.testing.models import DirectoryResident
from shared.auth import Principal, Role, Scope, ScopeKind
from shared.fields import PRINTABLE_PATTERN
from tests.conftest import Town
from tests.notify_support import messages, notify_knows
from tests.support import (
    Compound,
    account,
    committee_staff,
    eventually,
    headers_for,
    make_building,
    make_compound,
    make_resident,
    post,
)

ROLES = [r.value for r in Role]
NARROW = {"grid_leader", "building_leader", "volunteer"}
WRITES = {"post", "put", "patch", "delete"}
# Operations that name no object and act on the caller's own scope only: allowed to answer
# 2xx, but like every other write they must change nothing the caller does not manage.
OWN_SCOPE = {("post", "/v1/registry/resync")}
# Writes where a place only narrows what the caller acts on in their own scope (the medicine
# runs of theirs in a compound): a narrow role naming their own compound, which they see but
# do not manage, may answer 2xx (their buildings' share of it, here nothing: no row changes);
# another committee's compound is refused like every write. (The narrow roles' probes name
# their own compound, with another building of it: tests/test_logistics_requests.py refuses
# a building leader another committee's compound.)
NARROWED_BY_PLACE = {("post", "/v1/trips")}
# The one operation open without a token: signing in (the sessions' own tests cover it).
# What answers without a bearer token: signing in, spending or ending a refresh token (the
# token is the credential), and the blank ledger templates (no data in them).
PUBLIC = {
    ("post", "/v1/auth/token"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/sign-out"),
    ("get", "/v1/imports/template.csv"),
    ("get", "/v1/imports/template.xlsx"),
    # Called by the SMS gateway, which has no account: the body's HMAC signature under the
    # shared receipt secret is checked instead (services/notify/delivery/receipts.py).
    ("post", "/v1/sms-receipts"),
}
WINDOW = {"starts_at": "2022-04-02T05:00:00+08:00", "ends_at": "2022-04-02T11:00:00+08:00"}
RESULTED = "2022-04-02T14:00:00+08:00"

# Bodies whose rules their types do not tell (one of several places, a pattern): the fields
# given here win over generated ones; ``{id:name}`` is replaced by the foreign id of ``name``.
EXAMPLES: dict[str, dict[str, Any]] = {
    "UserCreate": {
        "username": "matrix-user",
        "password": "matrix-password-1",
        "role": "volunteer",
        "person_kind": "volunteer",
        "person_id": "{id:volunteer_id}",
        "committee_id": None,
    },
    "AssignmentCreate": {
        "person_kind": "volunteer",
        "person_id": "{id:volunteer_id}",
        "building_id": "{id:building_id}",
        "compound_id": None,
        "grid_id": None,
    },
    "StaffCreate": {"compound_id": "{id:compound_id}", "committee_id": None, "town_id": None},
    "VolunteerCreate": {"compound_id": "{id:compound_id}", "committee_id": None, "town_id": None},
    "TeamCreate": {"compound_id": "{id:compound_id}", "committee_id": None},
    "GridCreate": {"compound_id": "{id:compound_id}", "building_ids": ["{id:building_id}"]},
    "PersonRef": {"person_kind": "volunteer", "person_id": "{id:volunteer_id}"},
    "ResidentCreate": {"document_number": "110101198005170011"},
    "ResidentMove": {"household_id": "{id:household_id}"},
    "RoundCreate": {"scope": {"kind": "compounds", "ids": ["{id:compound_id}"]}, **WINDOW},
    "TubeIn": {"code": "MATRIX-1", "member_ids": ["{id:resident_id}"]},
    "ContactIn": {"resident_id": "{id:resident_id}", "name": None, "phone": None},
    "TransferIn": {
        "status": "scheduled",
        "destination": "Fangcang 1",
        "scheduled_for": "2022-04-02T12:00:00+08:00",
    },
    "AntigenBatchIn": {
        "building_id": "{id:building_id}",
        "reports": [{"resident_id": "{id:resident_id}", "result": "negative"}],
    },
    "ZoneSet": {"level": "sealed", "unit_id": None},
    "RequestCreate": {"kind": "groceries", "reason": None, "hospital": None},
    "RecurrenceCreate": {"kind": "groceries", "reason": None, "hospital": None},
    "Assign": {"volunteer_id": "{id:volunteer_id}", "team": None},
    "BroadcastCreate": {
        "scope": {"kind": "compounds", "ids": ["{id:compound_id}"]},
        "template_key": "sealed",
        "variables": {"area": "乙区", "time": "2022-04-02T01:30:00+08:00"},
        "valid_until": "2099-01-01T00:00:00Z",
    },
    "PlanCreate": {"scope": {"kind": "compounds", "ids": ["{id:compound_id}"]}},
    "PlanLine": {"item_id": "{id:item_id}"},
    "DeliveryIn": {
        "client_ref": "matrix-1",
        "household_id": "{id:household_id}",
        "outcome": "delivered",
        "received_by": "matrix",
    },
    "UnitDelivery": {"client_ref": "matrix-2", "outcome": "delivered", "received_by": "matrix"},
}
# Uploads, by path: the file names the foreign objects.
FILES: dict[str, tuple[str, str, str]] = {
    "/v1/imports/residents": (
        "ledger.csv",
        "compound,building,unit,household,name,document_number\n"
        "{code:compound},1,1,M1,矩阵居民,110101198005170011\n",
        "text/csv",
    ),
    "/v1/results/uploads": (
        "lab.csv",
        f"tube_code,result,lab,resulted_at\n{{code:tube}},positive,Lab,{RESULTED}\n",
        "text/csv",
    ),
}


@dataclass
class World:
    headers: dict[str, dict[str, str]]
    # Committee B's objects by parameter name, and for the narrow roles the other building's.
    ids: dict[str, str]
    narrow_ids: dict[str, str]
    codes: dict[str, str]
    secrets: list[str]
    narrow_secrets: list[str]
    views_before: dict[tuple[str, str], Any] = field(default_factory=dict)
    # Town-level objects the town's other roles see but do not manage.
    above_ids: dict[str, str] = field(default_factory=dict)

    def ids_for(self, role: str) -> dict[str, str]:
        return {**self.ids, **self.narrow_ids} if role in NARROW else self.ids

    def secrets_for(self, role: str) -> list[str]:
        return self.secrets + (self.narrow_secrets if role in NARROW else [])


class Unbuildable(AssertionError):
    """An operation whose request this test cannot build: add an EXAMPLES or FILES entry."""


# --- requests from the OpenAPI document -------------------------------------------------


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> tuple[str | None, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return None, schema
    name = ref.rsplit("/", 1)[-1]
    return name, components[name]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("{id:"):
        return ids[value[4:-1]]
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _value(schema: dict[str, Any], name: str, ids: dict[str, str], c: dict[str, Any]) -> Any:
    ref, schema = _resolve(schema, c)
    for union in ("anyOf", "oneOf", "allOf"):
        if union in schema:
            branches = [b for b in schema[union] if b.get("type") != "null"]
            return _value(branches[0], name, ids, c)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "properties" in schema or schema.get("type") == "object":
        return _object(schema, ref, ids, c)
    kind = schema.get("type")
    if kind == "array":
        item = _value(schema.get("items", {}), name.removesuffix("s"), ids, c)
        return [item] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return False
    if kind == "string":
        return _string(schema, name, ids)
    raise Unbuildable(f"no way to build {name}: {schema}")


def _string(schema: dict[str, Any], name: str, ids: dict[str, str]) -> Any:
    fmt = schema.get("format")
    if fmt == "uuid":
        key = name if name.endswith("_id") else f"{name}_id"
        if key not in ids:
            raise Unbuildable(f"no foreign object for {name}")
        return ids[key]
    if fmt == "date-time":
        return "2022-04-02T05:00:00+08:00"
    if fmt == "date":
        return "2022-04-02"
    if "examples" in schema:
        return schema["examples"][0]
    if schema.get("pattern") == PRINTABLE_PATTERN:
        # Free text: any printable text will do.
        return "m" * max(4, schema.get("minLength", 4))
    if "pattern" in schema:
        raise Unbuildable(f"{name} must match {schema['pattern']}: give an example")
    return "m" * max(4, schema.get("minLength", 4))


def _object(
    schema: dict[str, Any], ref: str | None, ids: dict[str, str], c: dict[str, Any]
) -> dict[str, Any]:
    given = _fill(EXAMPLES.get(ref or "", {}), ids)
    body: dict[str, Any] = {}
    for prop, sub in schema.get("properties", {}).items():
        if prop in given:
            if given[prop] is not None:
                body[prop] = given[prop]
            continue
        # Required fields, and every id a caller could name (to name the foreign object).
        if prop in schema.get("required", []) or (prop.endswith("_id") and prop in ids):
            try:
                body[prop] = _value(sub, prop, ids, c)
            except Unbuildable as exc:
                raise Unbuildable(f"{ref}.{exc}") from None
    body.update({k: v for k, v in given.items() if k not in body and v is not None})
    return body


def _request(
    method: str,
    path: str,
    operation: dict[str, Any],
    ids: dict[str, str],
    world: World,
    openapi: Any,
) -> dict[str, Any]:
    components = openapi["components"]["schemas"]
    url, params = path, {}
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if where == "path":
            if name not in ids:
                raise Unbuildable(f"{method} {path}: no foreign object for {{{name}}}")
            url = url.replace(f"{{{name}}}", ids[name])
        elif where == "query" and (parameter.get("required") or name in ids):
            params[name] = _value(parameter["schema"], name, ids, components)
    request: dict[str, Any] = {"method": method.upper(), "url": url, "params": params}
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        if path not in FILES:
            raise Unbuildable(f"{method} {path}: an upload; give FILES[{path!r}]")
        filename, text, media = FILES[path]
        for key, value in world.codes.items():
            text = text.replace(f"{{code:{key}}}", value)
        request["files"] = {"file": (filename, text.encode(), media)}
    elif "application/json" in content:
        request["json"] = _value(content["application/json"]["schema"], "body", ids, components)
    elif content:
        raise Unbuildable(f"{method} {path}: cannot build a {sorted(content)} body")
    return request


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/v1/"):
                continue
            if not operation.get("security"):
                assert (method, path) in PUBLIC, f"{method} {path} needs no token"
                continue
            found.append((method, path, operation))
    return found


# --- the world ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _workers(platform: Platform) -> AsyncIterator[None]:
    # Relays and consumers only: a periodic job judges by the real clock, and one making a
    # row while the roles are tried (a recurring trip coming due on a Monday morning) would
    # read as a write by the role.
    task = asyncio.create_task(platform.run_workers(periodic=False))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _directory_has(platform: Platform, residents: int) -> None:
    async def arrived() -> bool:
        async with platform.runtime("testing").uow(Principal.system()) as uow:
            query = select(func.count()).select_from(DirectoryResident)
            return await uow.session.scalar(query) == residents

    await eventually(arrived, what=f"{residents} residents in the testing directory")


async def _own_side(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> tuple[Compound, Compound, dict[str, dict[str, str]], str]:
    """Committee A: compound PA with buildings 1 and 2, and one signed-in caller per role
    (narrow roles hold building 1); committee B without its compound yet."""
    h = town.operator
    mine = await make_compound(client, town.id, h, code="PA")
    second = await make_building(client, mine, h, code="2")
    await make_resident(client, mine, h, name="甲区居民")
    theirs_committee = await post(
        client, "/v1/committees", {"town_id": str(town.id), "code": "KB", "name": "乙委"}, h
    )
    headers = {"committee_staff": await committee_staff(client, town, mine, "matrix-staff")}
    grid = await post(
        client,
        "/v1/grids",
        {
            "town_id": str(town.id),
            "compound_id": mine.id,
            "code": "GA",
            "name": "甲网格",
            "building_ids": [mine.building_id],
        },
        h,
    )
    for role in ("grid_leader", "building_leader", "volunteer"):
        person = await post(
            client, "/v1/volunteers", {"compound_id": mine.id, "name": role, "kind": "service"}, h
        )
        ref = {"person_kind": "volunteer", "person_id": person["id"]}
        post_of = (
            {"grid_id": grid["id"]} if role == "grid_leader" else {"building_id": mine.building_id}
        )
        await post(client, "/v1/assignments", {**ref, **post_of}, h)
        headers[role] = await account(client, town, username=f"matrix-{role}", role=role, **ref)
    elsewhere = Scope.of(ScopeKind.towns, towns=[uuid.uuid4()])
    for role in (Role.town_operator, Role.service):
        headers[role.value] = headers_for(platform, role, elsewhere, f"matrix-{role.value}")
    return mine, second, headers, theirs_committee["id"]


async def _above(client: httpx.AsyncClient, town: Town) -> dict[str, str]:
    """Town-level objects: a town-wide round, the town's own staff and volunteer, a grid of
    the town office with an assignment on it."""
    h, at = town.operator, {"town_id": str(town.id)}
    staff = await post(client, "/v1/staff", {**at, "name": "镇干部", "title": "t"}, h)
    volunteer = await post(
        client, "/v1/volunteers", {**at, "name": "镇志愿者", "kind": "expert"}, h
    )
    grid = await post(client, "/v1/grids", {**at, "code": "GT", "name": "镇网格"}, h)
    ref = {"person_kind": "staff", "person_id": staff["id"]}
    assignment = await post(client, "/v1/assignments", {**ref, "grid_id": grid["id"]}, h)
    round_ = await post(
        client, "/v1/rounds", {**at, "name": "全镇", "scope": {"kind": "town"}, **WINDOW}, h
    )
    await post(client, f"/v1/rounds/{round_['id']}/open", {}, h)
    return {
        "staff_id": staff["id"],
        "volunteer_id": volunteer["id"],
        "person_id": volunteer["id"],
        "assignment_id": assignment["id"],
        "round_id": round_["id"],
    }


async def _other_building(
    client: httpx.AsyncClient, town: Town, second: Compound
) -> tuple[dict[str, str], list[str]]:
    """For the narrow roles: another building of their own compound, and the compound
    itself, which they see but do not manage."""
    resident = await make_resident(
        client, second, town.operator, household="A2-1", name="甲二楼居民"
    )
    gates = await client.get(f"/v1/compounds/{second.id}/gates", headers=town.operator)
    ids = {
        "compound_id": second.id,
        "gate_id": gates.json()[0]["id"],
        "resident_id": resident["id"],
        "household_id": resident["household_id"],
        "building_id": second.building_id,
        "unit_id": second.unit_ids[0],
    }
    return ids, ["甲二楼居民", resident["id"], resident["household_id"], second.building_id]


async def _their_side(
    client: httpx.AsyncClient, town: Town, platform: Platform, committee_id: str
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Committee B's objects in both services, one of each kind an operation can name."""
    h = town.operator
    other = await make_compound(client, town.id, h, code="PB", committee_id=committee_id)
    resident = await make_resident(client, other, h, name="乙区居民", tags=["elderly"])
    spouse = await make_resident(client, other, h, name="乙区家属")
    at = {"compound_id": other.id}
    staff = await post(client, "/v1/staff", {**at, "name": "乙区干部", "title": "t"}, h)
    volunteer = await post(
        client, "/v1/volunteers", {**at, "name": "乙区志愿者", "kind": "service"}, h
    )
    team = await post(client, "/v1/teams", {**at, "kind": "medical", "name": "乙区医疗队"}, h)
    ref = {"person_kind": "volunteer", "person_id": volunteer["id"]}
    await post(client, f"/v1/teams/{team['id']}/members", ref, h)
    assignment = await post(client, "/v1/assignments", {**ref, "building_id": other.building_id}, h)
    user = await post(
        client,
        "/v1/users",
        {
            "username": "b-helper-account",
            "password": "matrix-b-pass-1",
            "role": "volunteer",
            "town_id": str(town.id),
            **ref,
        },
        h,
    )
    ledger = (
        f"compound,building,unit,household,name,document_number\nPB,1,1,B9,乙区导入居民,{_doc()}\n"
    )
    imported = await client.post(
        "/v1/imports/residents",
        files={"file": ("乙区名单.csv", ledger.encode(), "text/csv")},
        headers=h,
    )
    assert imported.status_code == 201, imported.text
    zone = {"building_id": other.building_id, "level": "sealed", "reason": "乙区封控"}
    await post(client, "/v1/zones", zone, h)
    await _propose_downgrades(platform, days=8)
    proposals = (await client.get("/v1/zones/proposals", headers=h)).json()["items"]
    gates = (await client.get(f"/v1/compounds/{other.id}/gates", headers=h)).json()
    await _directory_has(platform, residents=5)
    round_ = await post(
        client,
        "/v1/rounds",
        {
            "town_id": str(town.id),
            "name": "乙区轮次",
            "pool_size": 1,
            "scope": {"kind": "compounds", "ids": [other.id]},
            **WINDOW,
        },
        h,
    )
    await post(client, f"/v1/rounds/{round_['id']}/open", {}, h)
    site = await post(
        client,
        f"/v1/rounds/{round_['id']}/sites",
        {"compound_id": other.id, "name": "乙区采样点"},
        h,
    )
    for code, person in (("B-0001", resident), ("B-0002", spouse)):
        body = {
            "code": code,
            "member_ids": [person["id"]],
            "collector": "乙区护士",
            "collected_at": "2022-04-02T05:12:00+08:00",
        }
        await post(client, f"/v1/rounds/{round_['id']}/tubes", body, h)
    lab = f"tube_code,result,lab,resulted_at\nB-0001,positive,Lab,{RESULTED}\n"
    uploaded = await client.post(
        "/v1/results/uploads", files={"file": ("lab.csv", lab.encode(), "text/csv")}, headers=h
    )
    assert uploaded.status_code == 201, uploaded.text
    [case] = (await client.get("/v1/cases", headers=h)).json()["items"]
    schedule_id, task_id = await _disinfection(client, platform, other, h)
    errands = await _logistics_side(client, town, platform, other, spouse["id"])
    broadcast, message = await _notify_side(client, town, platform, other)
    ids = {
        **errands,
        "town_id": str(town.id),
        "committee_id": committee_id,
        "compound_id": other.id,
        "gate_id": gates[0]["id"],
        "building_id": other.building_id,
        "unit_id": other.unit_ids[0],
        "household_id": resident["household_id"],
        "resident_id": spouse["id"],
        "staff_id": staff["id"],
        "volunteer_id": volunteer["id"],
        "person_id": volunteer["id"],
        "team_id": team["id"],
        "assignment_id": assignment["id"],
        "proposal_id": proposals[0]["id"],
        "import_id": imported.json()["id"],
        "round_id": round_["id"],
        "site_id": site["id"],
        "code": "B-0002",
        "upload_id": uploaded.json()["id"],
        "case_id": case["id"],
        "user_id": user["id"],
        "schedule_id": schedule_id,
        "task_id": task_id,
        "broadcast_id": broadcast,
        "message_id": message,
        # Templates and rules are named by key; a seal's is no secret of B's.
        "key": "sealed",
    }
    secrets = [
        *(v for k, v in ids.items() if k not in ("town_id", "committee_id", "key")),
        "乙区居民",
        "乙区家属",
        "乙区干部",
        "乙区志愿者",
        "乙区医疗队",
        "乙区导入居民",
        "乙区封控",
        "乙区轮次",
        "乙区采样点",
        "乙区护士",
        "乙区名单",
        "乙区医院",
        "B-0001",
        "b-helper-account",
        resident["document_number"],
        spouse["document_number"],
    ]
    return ids, {"compound": "PB", "tube": "B-0001"}, secrets


async def _disinfection(
    client: httpx.AsyncClient, platform: Platform, other: Compound, h: dict[str, str]
) -> tuple[str, str]:
    """Logistics: the case's stairwell schedule in committee B (made from the case's event)
    and its first task."""
    url = f"/v1/disinfection-schedules?compound_id={other.id}"

    async def scheduled() -> bool:
        items = (await client.get(url, headers=h)).json()["items"]
        return any(s["reason"] == "case" for s in items)

    await eventually(scheduled, what="the case's stairwell schedule in logistics")
    items = (await client.get(url, headers=h)).json()["items"]
    [stairwell] = [s for s in items if s["reason"] == "case"]
    # The day's tasks made now, so the worker's job makes none while the roles are tried.
    runtime = platform.runtime("logistics")
    [job] = [j for j in runtime.spec.periodic if j.name == "disinfection-tasks"]
    await runtime.tick(job)
    tasks = await client.get(f"/v1/disinfection-tasks?schedule_id={stairwell['id']}", headers=h)
    return stairwell["id"], tasks.json()["items"][0]["id"]


async def _stock_above(client: httpx.AsyncClient, town: Town, platform: Platform) -> dict[str, str]:
    """The town's catalogue item and stock in its warehouse (town-level, before B exists)."""
    await _logistics_knows(platform, str(town.id))
    h = town.operator
    item = await post(
        client, "/v1/items", {"town_id": str(town.id), "name": "大米", "unit": "kg"}, h
    )
    line = {"item_id": item["id"], "quantity": 100}
    body = {"holder_id": str(town.id), "source": "government", "lines": [line]}
    await post(client, "/v1/stock/receipts", body, h)
    return {"item_id": item["id"]}


async def _logistics_knows(platform: Platform, place_id: str) -> None:
    async def arrived() -> bool:
        async with platform.runtime("logistics").uow(Principal.system()) as uow:
            Place = LogisticsDirectory.models.Place
            query = select(func.count()).select_from(Place).where(Place.id == uuid.UUID(place_id))
            return await uow.session.scalar(query) == 1

    await eventually(arrived, what=f"place {place_id} in the logistics directory")


async def _their_plan(client: httpx.AsyncClient, town: Town, ids: dict[str, str]) -> str:
    """A distribution plan over B's compound, reserving from the donation in B's store."""
    line = {"item_id": ids["item_id"], "label": "乙区名单"}
    body = {
        "town_id": str(town.id),
        "name": "乙区配送",
        "scope": {"kind": "compounds", "ids": [ids["compound_id"]]},
        "lines": [line],
    }
    return str((await post(client, "/v1/distribution-plans", body, town.operator))["id"])


async def _their_stock(
    client: httpx.AsyncClient,
    town: Town,
    platform: Platform,
    ids: dict[str, str],
    above: dict[str, str],
) -> tuple[dict[str, str], list[str]]:
    """B's store: a donation received there and a transfer from the warehouse to it."""
    h, store = town.operator, ids["compound_id"]
    await _logistics_knows(platform, store)
    line = {"item_id": above["item_id"], "quantity": 10, "batch": "乙区批次"}
    donation = {
        "holder_id": store,
        "source": "donation",
        "donor": "乙区捐赠人",
        "donor_contact": "13900000000",
        "lines": [line],
    }
    received = await post(client, "/v1/stock/receipts", donation, h)
    transfer = {"to_holder_id": store, "lines": [{"item_id": above["item_id"], "quantity": 5}]}
    sent = await post(client, "/v1/stock/transfers", transfer, h)
    found = {
        "holder_id": store,
        "to_holder_id": store,
        "batch_id": received["entries"][0]["batch_id"],
        "transfer_id": sent["id"],
        "reference_id": str(uuid.uuid4()),
        # The town's item: not B's, every role of the town sees it.
        "item_id": above["item_id"],
    }
    return found, [found["batch_id"], found["transfer_id"], "乙区捐赠人", "乙区批次"]


async def _logistics_side(
    client: httpx.AsyncClient, town: Town, platform: Platform, other: Compound, resident: str
) -> dict[str, str]:
    """Committee B's help request (a medicine run on a trip) and recurring request."""
    h = town.operator

    async def arrived() -> bool:
        async with platform.runtime("logistics").uow(Principal.system()) as uow:
            model = LogisticsDirectory.models.Resident
            return await uow.session.get(model, uuid.UUID(resident)) is not None

    await eventually(arrived, what="B's resident in the logistics directory")
    run = {"resident_id": resident, "kind": "medicine_run", "hospital": "乙区医院"}
    request = await post(client, "/v1/requests", run, h)
    recurring = {
        "resident_id": resident,
        "kind": "groceries",
        "weekdays": ["mon"],
        "at": "09:00",
        "starts_on": "2022-04-04",
    }
    recurrence = await post(client, "/v1/recurring-requests", recurring, h)
    [trip] = await post(client, "/v1/trips", {"compound_id": other.id}, h)
    return {"request_id": request["id"], "recurrence_id": recurrence["id"], "trip_id": trip["id"]}


async def _notify_side(
    client: httpx.AsyncClient, town: Town, platform: Platform, other: Compound
) -> tuple[str, str]:
    """B's broadcast and one of its messages, once the workers are done with B's events
    (the notify rules make messages of B's seal and round: none may arrive while the probes
    count rows)."""
    await notify_knows(platform, 5)
    counted = await _rows(platform)
    for _ in range(60):
        await asyncio.sleep(1)
        counted, before = await _rows(platform), counted
        if counted == before:
            break
    body = {
        "town_id": str(town.id),
        "scope": {"kind": "compounds", "ids": [other.id]},
        "template_key": "sealed",
        "variables": {"area": "乙区", "time": "2022-04-02T01:30:00+08:00"},
        "priority": "urgent",
        "valid_until": "2099-01-01T00:00:00Z",
    }
    broadcast = await post(client, "/v1/broadcasts", body, town.operator)
    [message, *_] = await messages(platform, broadcast_id=uuid.UUID(broadcast["id"]))
    return broadcast["id"], str(message.id)


async def _propose_downgrades(platform: Platform, *, days: int) -> None:
    runtime = platform.runtime("registry")
    [job] = [j for j in runtime.spec.periodic if j.name == "zone-downgrades"]
    await runtime.tick(job, now=datetime.now(UTC) + timedelta(days=days))


def _doc() -> str:
    from tests.support import id_number

    return id_number()


# --- what a role sees, and what is written -----------------------------------------------


async def _views(
    client: httpx.AsyncClient, world: World, openapi: dict[str, Any], role: str
) -> dict[tuple[str, str], Any]:
    """Every JSON list or object a role can read without naming an object."""
    seen = {}
    for method, path, operation in _operations(openapi):
        if method != "get" or "{" in path:
            continue
        if any(p.get("required") for p in operation.get("parameters", [])):
            continue
        response = await client.get(path, headers=world.headers[role])
        if response.headers.get("content-type", "").startswith("application/json"):
            seen[(role, path)] = (response.status_code, _stable(response.json()))
    return seen


def _stable(body: Any) -> Any:
    """Answers minus what changes by itself (a compound clock's running day count)."""
    return json.loads(json.dumps(body, sort_keys=True))


async def _rows(platform: Platform) -> dict[str, int]:
    """Rows of every table of every service, outbox and inbox included; not the access log,
    which records reads (an export is logged even when it finds nothing)."""
    counts = {}
    for name, runtime in platform.runtimes.items():
        async with runtime.uow(Principal.system()) as uow:
            for table in runtime.spec.metadata.sorted_tables:
                if table is not runtime.spec.kernel.access_log:
                    query = select(func.count()).select_from(table)
                    counts[f"{name}.{table.name}"] = int(await uow.session.scalar(query) or 0)
    return counts


async def _outbox(platform: Platform) -> set[str]:
    bodies: set[str] = set()
    for runtime in platform.runtimes.values():
        async with runtime.uow(Principal.system()) as uow:
            outbox = runtime.spec.kernel.outbox
            bodies.update(await uow.session.scalars(select(outbox.c.body)))
    return bodies


@pytest.fixture
async def world(client: httpx.AsyncClient, town: Town, platform: Platform) -> AsyncIterator[World]:
    # Workers run throughout, so the testing directory keeps up with what the probes write
    # (a lagging directory answers 503 before any policy is asked).
    async with _workers(platform):
        _, second, headers, committee_id = await _own_side(client, town, platform)
        narrow_ids, narrow_secrets = await _other_building(client, town, second)
        await _directory_has(platform, residents=2)
        above = await _above(client, town)
        above.update(await _stock_above(client, town, platform))
        openapi = (await client.get("/openapi.json")).json()
        partial = World(headers, {}, narrow_ids, {}, [], narrow_secrets)
        before = {}
        for role in ROLES:
            before.update(await _views(client, partial, openapi, role))
        ids, codes, secrets = await _their_side(client, town, platform, committee_id)
        stock_ids, stock_secrets = await _their_stock(client, town, platform, ids, above)
        ids.update(stock_ids)
        secrets += stock_secrets
        ids["plan_id"] = await _their_plan(client, town, ids)
        secrets += [ids["plan_id"], "乙区配送"]
        await asyncio.sleep(0.5)
        yield World(headers, ids, narrow_ids, codes, secrets, narrow_secrets, before, above)


async def test_no_role_reaches_another_committees_objects(
    client: httpx.AsyncClient, platform: Platform, world: World
) -> None:
    openapi = (await client.get("/openapi.json")).json()
    operations = _operations(openapi)
    assert len(operations) >= 90
    for role in ROLES:
        # Nothing of B is counted or listed in what the role saw before B existed.
        after = await _views(client, world, openapi, role)
        for key, seen in after.items():
            assert seen == world.views_before.get(key), f"{role} GET {key[1]} changed with B"
        rows = await _rows(platform)
        own_scope = []
        # B's objects; then, for the town's own roles, the town's objects where they exist.
        targets = [world.ids_for(role)]
        if role in NARROW:
            # B's own objects too: the narrow roles' ids above name their own compound.
            targets.append(world.ids)
        if role in NARROW or role == "committee_staff":
            targets.append({**world.ids_for(role), **world.above_ids})
        for ids, (method, path, operation) in itertools.product(targets, operations):
            if (method, path) in OWN_SCOPE:
                own_scope.append((method, path, operation))
                continue
            request = _request(method, path, operation, ids, world, openapi)
            response = await client.request(**request, headers=world.headers[role])
            where = f"{role} {method.upper()} {response.request.url}"
            assert response.status_code < 500, f"{where}: {response.text}"
            if method in WRITES:
                own_compound = (
                    role in NARROW and (method, path) in NARROWED_BY_PLACE and ids is not world.ids
                )
                allowed = (200, 201, 403, 404) if own_compound else (403, 404)
                assert response.status_code in allowed, (
                    f"{where}: {response.status_code} {response.text}"
                )
            elif method == "get":
                assert response.status_code in (200, 403, 404), f"{where}: {response.text}"
            sent = str(request)
            leaked = [s for s in world.secrets_for(role) if s in response.text and s not in sent]
            assert not leaked, f"{where} showed another committee's data: {leaked}"
        now = await _rows(platform)
        assert {k: (v, now[k]) for k, v in rows.items() if now[k] != v} == {}, f"{role} wrote"
        # What acts on the caller's own scope may write, but nothing of B.
        published = await _outbox(platform)
        for method, path, operation in own_scope:
            request = _request(method, path, operation, world.ids_for(role), world, openapi)
            response = await client.request(**request, headers=world.headers[role])
            assert response.status_code < 500, f"{role} {method} {path}: {response.text}"
            assert not [s for s in world.secrets_for(role) if s in response.text]
        fresh = " ".join((await _outbox(platform)) - published)
        assert not [s for s in world.secrets_for(role) if s in fresh], f"{role} published B"
