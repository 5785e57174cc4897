"""Re-sync: a service that starts empty rebuilds its projection of the registry from the
snapshot events alone, through the real bus."""

import asyncio
import contextlib
import uuid
from typing import Any

import httpx

from cordon.platform import Platform
from shared.bus.transport import Subscription
from shared.events import Envelope
from tests.conftest import Town, queue_cleanup
from tests.support import (
    committee_staff,
    eventually,
    make_compound,
    make_resident,
    outbox_events,
    post,
)


async def resync(client: httpx.AsyncClient, platform: Platform, headers: Any) -> list[Envelope]:
    """Start a re-sync and collect its snapshot events from the bus, as a fresh service would."""
    relay = platform.runtime("registry").relay
    await relay.drain()
    queue = f"{platform.settings.schema_prefix}test.projection"
    subscription = Subscription(queue, ("registry.*.snapshot", "registry.snapshot.*"))
    await platform.transport.declare(subscription)
    received: list[Envelope] = []
    done = asyncio.Event()

    async def collect(envelope: Envelope) -> None:
        received.append(envelope)
        if envelope.type == "registry.snapshot.completed":
            done.set()

    consumer = asyncio.create_task(platform.transport.consume(subscription, collect))
    try:
        response = await client.post("/v1/registry/resync", headers=headers)
        assert response.status_code == 202, response.text
        await relay.drain()
        await asyncio.wait_for(done.wait(), timeout=20)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await queue_cleanup(platform, [queue])
    return received


async def test_a_projection_rebuilt_from_a_resync_matches_the_registry(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    for n in range(7):
        await make_resident(
            client,
            compound,
            town.operator,
            household=f"H{n % 3}",
            name=f"居民{n}",
            tags=["elderly"] if n % 2 else [],
        )
    await client.post(
        "/v1/zones",
        json={"building_id": compound.building_id, "level": "controlled", "reason": "contact"},
        headers=town.operator,
    )
    received = await resync(client, platform, town.operator)

    projection: dict[str, tuple[str, list[str]]] = {}
    places: set[str] = set()
    zones: list[str | None] = []
    for envelope in received:
        payload = envelope.payload
        if envelope.type == "registry.residents.snapshot":
            for r in payload["residents"]:
                projection[r["id"]] = (r["name"], r["tags"])
        elif envelope.type == "registry.places.snapshot":
            places |= {p["id"] for p in payload["places"]}
        elif envelope.type == "registry.zones.snapshot":
            zones += [z["to_level"] for z in payload["zones"]]
    [completed] = [e for e in received if e.type == "registry.snapshot.completed"]
    assert completed.payload["residents"] == 7

    listed = (await client.get("/v1/residents", headers=town.operator)).json()["items"]
    assert projection == {r["id"]: (r["name"], r["tags"]) for r in listed}
    assert {compound.id, compound.building_id, *compound.unit_ids} <= places
    assert zones == ["controlled"]


async def test_only_operators_start_a_resync(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    staff = await committee_staff(client, town, compound, "staff-1")
    assert (await client.post("/v1/registry/resync", headers=staff)).status_code == 403


async def test_grids_are_published_when_created_and_come_through_a_resync(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    first = await make_compound(client, town.id, town.operator, code="P1")
    second = await make_compound(client, town.id, town.operator, code="P2")
    grid = await post(
        client,
        "/v1/grids",
        {
            "town_id": str(town.id),
            "code": "G1",
            "name": "Grid 1",
            "building_ids": [first.building_id, second.building_id],
        },
        town.operator,
    )
    microgrid = await post(
        client,
        "/v1/grids",
        {
            "town_id": str(town.id),
            "compound_id": first.id,
            "parent_id": grid["id"],
            "code": "G1-1",
            "name": "Microgrid 1-1",
            "building_ids": [first.building_id],
        },
        town.operator,
    )
    expected = {
        grid["id"]: (None, {first.building_id, second.building_id}),
        microgrid["id"]: (grid["id"], {first.building_id}),
    }

    registered = await outbox_events(platform, "registry.place.registered")
    published = {
        p["id"]: (p["parent_id"], set(p["building_ids"]))
        for p in (e["payload"]["place"] for e in registered)
        if p["kind"] == "grid"
    }
    assert published == expected

    received = await resync(client, platform, town.operator)
    snapshot = {
        p["id"]: (p["parent_id"], set(p["building_ids"]))
        for e in received
        if e.type == "registry.places.snapshot"
        for p in e.payload["places"]
        if p["kind"] == "grid"
    }
    assert snapshot == expected
    [completed] = [e for e in received if e.type == "registry.snapshot.completed"]
    # The town, two committees, compounds, buildings, four units and two grids.
    assert completed.payload["places"] == 1 + 2 + 2 + 2 + 4 + 2


async def outbox_holders(platform: Platform) -> int:
    """How many transactions hold a lock on the registry's outbox (PostgreSQL)."""
    from sqlalchemy import text

    registry = platform.runtime("registry")
    async with registry.database.session() as session:
        query = "SELECT count(DISTINCT pid) FROM pg_locks WHERE relation = 'outbox'::regclass"
        return int(await session.scalar(text(query)) or 0)


async def test_a_resync_waits_for_a_change_in_flight_and_includes_it(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """A change whose events were written before the snapshot started but not yet committed
    has a lower position than the snapshot: projections will drop it as older, so the
    snapshot must carry it."""
    from services.registry.models import ZoneLevel
    from services.registry.resync import publish_snapshot
    from services.registry.zones.service import set_zone
    from shared.auth import Principal

    compound = await make_compound(client, town.id, town.operator, code="P1")
    registry = platform.runtime("registry")

    async def snapshot() -> None:
        async with registry.uow(Principal.system()) as uow:
            await publish_snapshot(uow)
            await uow.commit()

    async with registry.uow(Principal.system()) as uow:
        await set_zone(
            uow,
            building_id=uuid.UUID(compound.building_id),
            unit_id=None,
            level=ZoneLevel.sealed,
            reason="case",
        )
        await uow.flush_events()
        snapshotting = asyncio.create_task(snapshot())
        if registry.database.is_sqlite:
            await asyncio.sleep(0.5)  # one writer at a time: it waits to begin
        else:

            async def started() -> bool:
                return await outbox_holders(platform) >= 2

            await eventually(started, what="the snapshot's start written")
        await asyncio.sleep(0.3)
        assert not snapshotting.done()
        await uow.commit()
    await asyncio.wait_for(snapshotting, timeout=60)
    zones = [
        z
        for e in await outbox_events(platform, "registry.zones.snapshot")
        for z in e["payload"]["zones"]
    ]
    assert [(z["building_id"], z["to_level"]) for z in zones] == [(compound.building_id, "sealed")]
