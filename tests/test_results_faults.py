"""A results upload propagating while the registry's consumer of testing events is stopped,
crashes mid-stream and gets the same events twice: every case and every zone change happens
exactly once."""

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from typing import Any

import httpx
import pytest

from cordon.platform import Platform
from services.testing.models import DirectoryResident
from shared.bus.transport import Outgoing
from tests.conftest import Town
from tests.support import eventually, listening, make_compound, make_resident, post
from tests.test_results import results_csv, upload
from tests.test_rounds import directory_count, schedule, tube

UNITS = 30


class Parts:
    """The system's background work, each part stoppable on its own."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.tasks[name] = asyncio.create_task(work(), name=name)

    async def stop(self, name: str) -> None:
        task = self.tasks.pop(name)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def parts(platform: Platform) -> AsyncIterator[Parts]:
    running = Parts()
    for name in ("registry", "testing"):
        runtime = platform.runtime(name)
        running.start(f"{name}.relay", lambda r=runtime: r.relay.run(r.wakeups()))
    testing = platform.runtime("testing")
    [directory] = testing.spec.consumers
    running.start("testing.directory", lambda: testing.consume(directory))
    start_zone_policy(platform, running)
    yield running
    for name in list(running.tasks):
        await running.stop(name)


def start_zone_policy(platform: Platform, running: Parts) -> None:
    registry = platform.runtime("registry")
    [policy] = [c for c in registry.spec.consumers if c.name == "zone-policy"]
    running.start("zone-policy", lambda: registry.consume(policy))


async def sealed_units(client: httpx.AsyncClient, town: Town, building_id: str) -> int:
    zones = await client.get(
        "/v1/zones", params={"building_id": building_id, "level": "sealed"}, headers=town.operator
    )
    return len(zones.json()["items"])


async def test_cases_and_zone_changes_happen_once_through_a_stopped_and_crashing_consumer(
    client: httpx.AsyncClient, town: Town, platform: Platform, parts: Parts
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="F1")
    units = [str(n) for n in range(1, UNITS + 1)]
    building = await post(
        client,
        "/v1/buildings",
        {"compound_id": compound.id, "code": "7", "units": units},
        town.operator,
    )
    listed = await client.get(
        f"/v1/units?building_id={building['id']}&limit=100", headers=town.operator
    )
    unit_ids = [u["id"] for u in listed.json()["items"]]
    tower = replace(compound, building_id=building["id"], unit_ids=unit_ids)
    people = [
        (await make_resident(client, tower, town.operator, household=f"H{n}", unit=n))["id"]
        for n in range(UNITS)
    ]

    async def in_directory() -> bool:
        return await directory_count(platform, DirectoryResident) == UNITS

    await eventually(in_directory, what="the residents in the testing directory")
    round_ = await schedule(
        client, town, {"kind": "buildings", "ids": [building["id"]]}, pool_size=1
    )
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    tubes = [tube(f"F{n:04d}", [person]) for n, person in enumerate(people)]
    recorded = await client.post(
        f"/v1/rounds/{round_['id']}/tubes/batch", json={"tubes": tubes}, headers=town.operator
    )
    assert recorded.json()["accepted"] == UNITS, recorded.text

    async with (
        listening(platform, "testing.case.confirmed") as cases,
        listening(platform, "registry.zone.changed") as zone_events,
    ):
        await parts.stop("zone-policy")
        lab = results_csv([(t["code"], "positive") for t in tubes])
        assert (await upload(client, town.operator, lab)).json()["positive"] == UNITS

        async def published() -> bool:
            return len(cases) == UNITS

        await eventually(published, what="every case on the bus")
        assert await sealed_units(client, town, building["id"]) == 0

        start_zone_policy(platform, parts)

        async def some_sealed() -> bool:
            return await sealed_units(client, town, building["id"]) > 0

        await eventually(some_sealed, what="the first seals")
        await parts.stop("zone-policy")
        halfway = await sealed_units(client, town, building["id"])
        assert (await upload(client, town.operator, lab)).json()["status"] == "duplicate"
        # A relay that died before deleting what it had published sends it all again.
        await platform.transport.publish([Outgoing(str(e.id), e.type, e.to_bytes()) for e in cases])
        start_zone_policy(platform, parts)

        async def all_sealed() -> bool:
            return await sealed_units(client, town, building["id"]) == UNITS

        await eventually(all_sealed, what="every case's unit sealed")

        async def settled() -> bool:
            return len(zone_events) >= UNITS

        await eventually(settled, what="every zone change on the bus")
        await asyncio.sleep(0.5)

    assert halfway > 0
    listed_cases = await client.get("/v1/cases", params={"limit": 500}, headers=town.operator)
    assert sorted(c["resident_id"] for c in listed_cases.json()["items"]) == sorted(people)
    history = await client.get(
        "/v1/zones/history", params={"building_id": building["id"]}, headers=town.operator
    )
    changes = Counter(h["unit_id"] for h in history.json())
    assert changes == Counter(unit_ids)
    assert Counter(e.payload["unit_id"] for e in zone_events) == Counter(unit_ids)
    assert len({e.payload["case_id"] for e in cases}) == UNITS
