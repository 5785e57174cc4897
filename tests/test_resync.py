"""Re-sync: a service that starts empty rebuilds its projection of the registry from the
snapshot events alone, through the real bus."""

import asyncio
import contextlib

import httpx

from cordon.platform import Platform
from shared.bus.transport import Subscription
from shared.events import Envelope
from tests.conftest import Town, queue_cleanup
from tests.support import committee_staff, make_compound, make_resident


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
        response = await client.post("/v1/registry/resync", headers=town.operator)
        assert response.status_code == 202, response.text
        await relay.drain()
        await asyncio.wait_for(done.wait(), timeout=20)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await queue_cleanup(platform, [queue])

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
