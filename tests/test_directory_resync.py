"""A re-sync replaces exactly what it covers in the testing directory: the towns its operator
sees, and only what is older than the snapshot. Through the real bus, on both backends."""

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from cordon.platform import Platform
from services.testing.models import DirectoryZone, directory
from shared.auth import Principal
from shared.contracts.registry import SnapshotCompleted, SnapshotStarted
from shared.db import table_of
from shared.events import Envelope
from shared.ids import new_id
from tests.conftest import Town, make_town
from tests.support import Compound, eventually, make_compound, post


async def zones_by_town(platform: Platform) -> dict[uuid.UUID, set[str | None]]:
    runtime = platform.runtime("testing")
    async with runtime.uow(Principal.system()) as uow:
        rows = await uow.session.execute(select(DirectoryZone.town_id, DirectoryZone.level))
        found: dict[uuid.UUID, set[str | None]] = {}
        for town_id, level in rows:
            found.setdefault(town_id, set()).add(level)
        return found


async def resyncs_completed(platform: Platform) -> int:
    runtime = platform.runtime("testing")
    snapshots = table_of(directory.models.Snapshot)
    async with runtime.uow(Principal.system()) as uow:
        done = await uow.session.scalars(
            select(snapshots.c.resync_id).where(snapshots.c.completed.is_(True))
        )
        return len(set(done))


async def seal(client: httpx.AsyncClient, compound: Compound, headers: dict[str, str]) -> None:
    body = {"building_id": compound.building_id, "level": "sealed", "reason": "case"}
    await post(client, "/v1/zones", body, headers)


async def leftover_zone(platform: Platform, town_id: uuid.UUID) -> None:
    """A zone the directory holds from before positions existed and the registry no longer has."""
    runtime = platform.runtime("testing")
    async with runtime.uow(Principal.system()) as uow:
        building = new_id()
        row = {
            "id": building,
            "town_id": town_id,
            "compound_id": new_id(),
            "building_id": building,
            "unit_id": None,
            "level": "controlled",
            "since": datetime.now(UTC),
            "position": 0,
        }
        await uow.session.execute(table_of(DirectoryZone).insert(), [row])
        await uow.commit()


async def test_one_town_s_resync_replaces_that_town_only(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    second = await make_town(
        platform, client, code="T2", name="Hillside Street", operator="operator2"
    )
    other_id, other = second.id, second.operator
    ours = await make_compound(client, town.id, town.operator, code="P1")
    theirs = await make_compound(client, other_id, other, code="Q1")
    await seal(client, ours, town.operator)
    await seal(client, theirs, other)

    async def both_sealed() -> bool:
        found = await zones_by_town(platform)
        return found.get(town.id) == {"sealed"} and found.get(other_id) == {"sealed"}

    await eventually(both_sealed, what="both towns' seals in the directory")
    await leftover_zone(platform, town.id)
    await leftover_zone(platform, other_id)

    response = await client.post("/v1/registry/resync", headers=other)
    assert response.status_code == 202, response.text

    async def resynced() -> bool:
        return await resyncs_completed(platform) == 1

    await eventually(resynced, what="the re-sync applied")
    found = await zones_by_town(platform)
    # The other town is exactly the registry's; ours keeps what it had, leftover included.
    assert found[other_id] == {"sealed"}
    assert found[town.id] == {"sealed", "controlled"}


async def test_a_replayed_snapshot_start_wipes_nothing_newer(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """A re-sync's start parked long ago and replayed now (then its completion): what the
    directory applied since is newer than the snapshot and stays."""
    compound = await make_compound(client, town.id, town.operator, code="P1")
    await seal(client, compound, town.operator)

    async def sealed() -> bool:
        return (await zones_by_town(platform)).get(town.id) == {"sealed"}

    await eventually(sealed, what="the seal in the directory")
    runtime = platform.runtime("testing")
    [consumer] = runtime.spec.consumers
    queue = runtime.subscription(consumer).queue
    resync_id = new_id()
    old = [
        (1, SnapshotStarted(resync_id=resync_id, town_ids=[town.id])),
        (2, SnapshotCompleted(resync_id=resync_id, batches=0, residents=0, places=0, zones=0)),
    ]
    for position, event in old:
        envelope = Envelope.wrap(event, producer="registry", correlation_id="replay")
        await runtime.process(
            consumer, envelope.model_copy(update={"position": position}), queue=queue
        )
    assert (await zones_by_town(platform)).get(town.id) == {"sealed"}
