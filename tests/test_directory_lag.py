"""Has the directory caught up? An operator who imports a ledger and schedules a round at once
must not get a round that silently misses the people still on their way: the directory says
how far behind the registry it is (/readyz, /metrics), and scheduling waits a bounded time,
then answers 503 with Retry-After naming the lag."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from cordon.platform import Platform
from cordon.services import ALL
from tests.conftest import Town
from tests.support import eventually, id_number, make_compound, make_resident
from tests.test_rounds import schedule, tube

HEADER = "compound,building,unit,room,household,name,document_number,phone,tags,care_notes\n"
WINDOW = {"starts_at": "2022-04-02T05:00:00+08:00", "ends_at": "2022-04-02T11:00:00+08:00"}


def ledger(code: str, n: int) -> bytes:
    rows = [f"{code},1,1,{100 + i},H{i // 3},居民{i},{id_number()},,,\n".encode() for i in range(n)]
    return HEADER.encode() + b"".join(rows)


@contextlib.asynccontextmanager
async def directory_consuming(
    platform: Platform, service: str, *, after: float = 0.0
) -> AsyncIterator[None]:
    """The service's directory consumer running (from ``after`` seconds on) inside the block:
    the fixtures run no workers, so the directory is behind until then."""
    runtime = platform.runtime(service)
    [directory] = [c for c in runtime.spec.consumers if c.name == "directory"]

    async def consume() -> None:
        await asyncio.sleep(after)
        await runtime.consume(directory)

    consuming = asyncio.create_task(consume())
    try:
        yield
    finally:
        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming


async def directory_lag(client: httpx.AsyncClient) -> dict[str, object]:
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    return dict(ready.json()["projections"]["testing.directory"])


async def test_a_round_waits_for_the_directory_to_catch_up_with_an_import(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    platform.settings.projection_wait_seconds = 0.5
    registry = platform.runtime("registry")
    await make_compound(client, town.id, town.operator, code="P1")
    imported = await client.post(
        "/v1/imports/residents",
        files={"file": ("ledger.csv", ledger("P1", 25), "text/csv")},
        headers=town.operator,
    )
    assert imported.status_code in (200, 201), imported.text
    await registry.relay.drain()

    # The directory's consumer is stopped: everything the registry did is still to come.
    behind = await directory_lag(client)
    assert behind["caught_up"] is False and int(str(behind["lag_events"])) > 0
    metrics = (await client.get("/metrics")).text
    assert 'cordon_projection_lag_events{projection="directory",service="testing",' in metrics
    body = {"town_id": str(town.id), "name": "Night round", "scope": {"kind": "town"}, **WINDOW}
    refused = await client.post("/v1/rounds", json=body, headers=town.operator)
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert (
        "directory is" in refused.json()["detail"]
        and "behind the registry" in (refused.json()["detail"])
    )

    async with directory_consuming(platform, "testing"):

        async def caught_up() -> bool:
            return (await directory_lag(client))["caught_up"] is True

        await eventually(caught_up, what="the directory to catch up")
        scheduled = await client.post("/v1/rounds", json=body, headers=town.operator)
        assert scheduled.status_code == 201, scheduled.text
        assert scheduled.json()["expected"] == 25


async def test_after_a_restart_the_directory_still_knows_it_is_behind(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """The embedded mode's key-value store starts empty: the head of the registry's stream
    is read back from its database, so a directory with events still queued is not taken
    for caught up (the demo town seeded, then the process serving it started)."""
    await make_compound(client, town.id, town.operator, code="P1")
    restarted = Platform(platform.settings, ALL)
    await restarted.start(migrate=False)
    try:
        # Every service's directory: testing's, logistics' and notify's.
        lags = (await restarted.lags()).values()
        assert len(lags) == 3
        for lag in lags:
            assert lag["caught_up"] is False and int(str(lag["lag_events"])) > 0
    finally:
        await restarted.close()


async def test_a_receipt_for_a_compound_created_a_moment_ago_waits_for_the_directory(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """An operator who creates a compound and at once records the supplies that arrived for
    it must not be told the compound does not exist: a 404 while the service's directory is
    behind waits for it (bounded), then the work runs on what has arrived."""
    compound = await make_compound(client, town.id, town.operator, code="R1")
    await platform.runtime("registry").relay.drain()
    async with directory_consuming(platform, "logistics", after=0.3):
        item = {"town_id": str(town.id), "name": "Rice", "unit": "kg"}
        created = await client.post("/v1/items", json=item, headers=town.operator)
        assert created.status_code == 201, created.text
        line = {"item_id": created.json()["id"], "quantity": "50", "batch": "R-1"}
        receipt = {"holder_id": compound.id, "source": "government", "lines": [line]}
        received = await client.post("/v1/stock/receipts", json=receipt, headers=town.operator)
        assert received.status_code == 201, received.text

        # Caught up, a compound that does not exist is not found at once.
        unknown = {**receipt, "holder_id": "01a24e00-2045-72b8-97fb-75bd4690bdc6"}
        started = asyncio.get_running_loop().time()
        missing = await client.post("/v1/stock/receipts", json=unknown, headers=town.operator)
        assert missing.status_code == 404, missing.text
        assert missing.json()["errors"][0]["field"] == "holder_id"
        assert asyncio.get_running_loop().time() - started < 1.0

    # A directory that does not catch up in time: 503 naming the lag, never a false 404.
    platform.settings.projection_wait_seconds = 0.5
    later = await make_compound(client, town.id, town.operator, code="R2")
    behind = {**receipt, "holder_id": later.id}
    refused = await client.post("/v1/stock/receipts", json=behind, headers=town.operator)
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert "directory is" in refused.json()["detail"]


async def test_a_resident_registered_at_the_sampling_site_is_swabbed_at_once(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """A visitor registered by the staff at the sampling site at 2 a.m. and swabbed the next
    moment: the tube is not refused because the testing service has not heard of them yet."""
    registry = platform.runtime("registry")
    compound = await make_compound(client, town.id, town.operator, code="S1")
    await make_resident(client, compound, town.operator, name="甲")
    await registry.relay.drain()
    async with directory_consuming(platform, "testing"):
        round_ = await schedule(client, town, {"kind": "compounds", "ids": [compound.id]})
        opened = await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
        assert opened.status_code == 200, opened.text

    visitor = await make_resident(client, compound, town.operator, name="丁")
    await registry.relay.drain()
    async with directory_consuming(platform, "testing", after=0.3):
        path = f"/v1/rounds/{round_['id']}/tubes"
        swabbed = await client.post(
            path, json=tube("VISIT-1", [visitor["id"]]), headers=town.operator
        )
        assert swabbed.status_code == 201, swabbed.text
        assert swabbed.json()["member_ids"] == [visitor["id"]]
