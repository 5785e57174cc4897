"""Building blocks for API tests: places and people made through the public API."""

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select

from cordon.platform import Platform
from services.registry.documents import Sex, make_id_card
from services.registry.models import kernel
from shared.auth import Principal, Role, Scope, issue_token
from shared.bus.transport import Subscription
from shared.events import Envelope
from tests.conftest import queue_cleanup

_sequence = iter(range(1, 10**9))


def id_number(*, born: str = "1980-05-17", sex: Sex = Sex.FEMALE) -> str:
    from datetime import date

    n = next(_sequence)
    return make_id_card(
        region=f"{310100 + n // 500:06d}", birth=date.fromisoformat(born), sequence=n % 500, sex=sex
    )


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: Any) -> Any:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"
    return response.json()


@dataclass
class Compound:
    committee_id: str
    id: str
    code: str
    building_id: str
    building_code: str
    unit_ids: list[str]


async def make_compound(
    client: httpx.AsyncClient,
    town_id: uuid.UUID,
    headers: Any,
    *,
    code: str,
    committee_id: str | None = None,
) -> Compound:
    if committee_id is None:
        committee = await post(
            client,
            "/v1/committees",
            {"town_id": str(town_id), "code": f"K{code}", "name": f"Committee {code}"},
            headers,
        )
        committee_id = committee["id"]
    compound = await post(
        client,
        "/v1/compounds",
        {
            "committee_id": committee_id,
            "code": code,
            "name": f"Compound {code}",
            "kind": "public_housing",
            "gates": [{"name": "North gate"}],
        },
        headers,
    )
    building = await post(
        client,
        "/v1/buildings",
        {"compound_id": compound["id"], "code": "1", "units": ["1", "2"]},
        headers,
    )
    units = await client.get(f"/v1/units?building_id={building['id']}", headers=headers)
    unit_ids = [u["id"] for u in sorted(units.json()["items"], key=lambda u: u["code"])]
    return Compound(committee_id, compound["id"], code, building["id"], "1", unit_ids)


async def make_resident(
    client: httpx.AsyncClient,
    compound: Compound,
    headers: Any,
    *,
    household: str = "101",
    unit: int = 0,
    name: str = "王秀英",
    tags: list[str] | None = None,
    phone: str | None = "13812345678",
    born: str = "1980-05-17",
) -> dict[str, Any]:
    households = await client.get(
        f"/v1/households?building_id={compound.building_id}", headers=headers
    )
    existing = [h for h in households.json()["items"] if h["code"] == household]
    if existing:
        household_id = existing[0]["id"]
    else:
        created = await post(
            client,
            "/v1/households",
            {
                "building_id": compound.building_id,
                "unit_id": compound.unit_ids[unit],
                "code": household,
            },
            headers,
        )
        household_id = created["id"]
    body = {
        "household_id": household_id,
        "name": name,
        "document_number": id_number(born=born),
        "phone": phone,
        "tags": tags or [],
    }
    return dict(await post(client, "/v1/residents?reveal=true", body, headers))


async def committee_staff(
    client: httpx.AsyncClient, town: Any, compound: Compound, username: str
) -> dict[str, str]:
    """A committee_staff account for the compound's committee, signed in."""
    password = "staff-password-1"
    await post(
        client,
        "/v1/users",
        {
            "username": username,
            "password": password,
            "role": "committee_staff",
            "town_id": str(town.id),
            "committee_id": compound.committee_id,
        },
        town.operator,
    )
    return dict(await town.sign_in(username, password))


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 30, what: str = "condition"
) -> None:
    """Wait for work that travels over the bus (relays and consumers run in the background)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def outbox_events(platform: Platform, event_type: str) -> list[dict[str, Any]]:
    """Envelopes of a type the registry has written and not yet relayed (no workers run)."""
    runtime = platform.runtime("registry")
    async with runtime.uow(Principal.system()) as uow:
        bodies = await uow.session.scalars(
            select(kernel.outbox.c.body).where(kernel.outbox.c.routing_key == event_type)
        )
        return [json.loads(b) for b in bodies]


async def make_building(
    client: httpx.AsyncClient, compound: Compound, headers: Any, *, code: str
) -> Compound:
    """Another building (one unit) in the compound; the compound seen from that building."""
    building = await post(
        client, "/v1/buildings", {"compound_id": compound.id, "code": code, "units": ["1"]}, headers
    )
    units = await client.get(f"/v1/units?building_id={building['id']}", headers=headers)
    unit_ids = [u["id"] for u in units.json()["items"]]
    return replace(compound, building_id=building["id"], building_code=code, unit_ids=unit_ids)


async def account(
    client: httpx.AsyncClient,
    town: Any,
    *,
    username: str,
    role: str,
    person_kind: str | None = None,
    person_id: str | None = None,
) -> dict[str, str]:
    """An account of ``role`` (for a staff member or volunteer, if given), signed in."""
    password = "people-password-1"
    body = {
        "username": username,
        "password": password,
        "role": role,
        "town_id": str(town.id),
        "person_kind": person_kind,
        "person_id": person_id,
    }
    await post(client, "/v1/users", body, town.operator)
    return dict(await town.sign_in(username, password))


@asynccontextmanager
async def listening(platform: Platform, *bindings: str) -> AsyncIterator[list[Envelope]]:
    """Collect the events matching ``bindings`` from the real bus while the block runs."""
    queue = f"{platform.settings.schema_prefix}test.{uuid.uuid4().hex[:8]}"
    subscription = Subscription(queue, bindings)
    await platform.transport.declare(subscription)
    received: list[Envelope] = []

    async def collect(envelope: Envelope) -> None:
        received.append(envelope)

    consumer = asyncio.create_task(platform.transport.consume(subscription, collect))
    try:
        yield received
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await queue_cleanup(platform, [queue])


def of_type(events: list[Envelope], event_type: str) -> list[Envelope]:
    return [e for e in events if e.type == event_type]


def headers_for(
    platform: Platform, role: Role, scope: Scope, name: str, *, person_id: str | None = None
) -> dict[str, str]:
    """A signed-in caller of any role and scope, as the registry's sign-in would issue (for
    the staff member or volunteer ``person_id``, if given)."""
    principal = Principal(id=name, username=name, role=role, scope=scope, person_id=person_id)
    token = issue_token(principal, secret=platform.settings.secret_key, minutes=30)
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def commits_writing(platform: Platform, service: str, table: str) -> Iterator[list[int]]:
    """Count, while the block runs, the committed transactions of ``service`` that inserted
    into ``table`` (``[n]``): a group commit shows as fewer than its requests."""
    engine = platform.runtime(service).database.engine.sync_engine
    # Anywhere in the statement: an insert may be one part of a statement's ``WITH``.
    insert = f"INSERT INTO {table.upper()} ("
    counted = [0]

    def wrote(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if insert in statement.upper():
            conn.info["wrote the table"] = True

    def committed(conn: Any) -> None:
        counted[0] += bool(conn.info.pop("wrote the table", False))

    sqlalchemy_event.listen(engine, "before_cursor_execute", wrote)
    sqlalchemy_event.listen(engine, "commit", committed)
    try:
        yield counted
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", wrote)
        sqlalchemy_event.remove(engine, "commit", committed)


def answered_as_first(first: list[httpx.Response], again: list[httpx.Response]) -> None:
    """Resent with their keys, every request got its first answer, marked replayed."""
    assert [r.status_code for r in again] == [r.status_code for r in first]
    assert [r.json() for r in again] == [r.json() for r in first]
    assert {r.headers.get("Idempotent-Replayed") for r in again} == {"true"}
