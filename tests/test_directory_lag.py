"""Has the directory caught up? An operator who imports a ledger and schedules a round at once
must not get a round that silently misses the people still on their way: the directory says
how far behind the registry it is (/readyz, /metrics), and scheduling waits a bounded time,
then answers 503 with Retry-After naming the lag."""

import asyncio
import contextlib

import httpx

from cordon.platform import Platform
from cordon.services import ALL
from tests.conftest import Town
from tests.support import eventually, id_number, make_compound

HEADER = "compound,building,unit,room,household,name,document_number,phone,tags,care_notes\n"
WINDOW = {"starts_at": "2022-04-02T05:00:00+08:00", "ends_at": "2022-04-02T11:00:00+08:00"}


def ledger(code: str, n: int) -> bytes:
    rows = [f"{code},1,1,{100 + i},H{i // 3},居民{i},{id_number()},,,\n".encode() for i in range(n)]
    return HEADER.encode() + b"".join(rows)


async def directory_lag(client: httpx.AsyncClient) -> dict[str, object]:
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    return dict(ready.json()["projections"]["testing.directory"])


async def test_a_round_waits_for_the_directory_to_catch_up_with_an_import(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    platform.settings.projection_wait_seconds = 0.5
    registry = platform.runtime("registry")
    testing = platform.runtime("testing")
    [directory] = testing.spec.consumers
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

    consuming = asyncio.create_task(testing.consume(directory))
    try:

        async def caught_up() -> bool:
            return (await directory_lag(client))["caught_up"] is True

        await eventually(caught_up, what="the directory to catch up")
        scheduled = await client.post("/v1/rounds", json=body, headers=town.operator)
        assert scheduled.status_code == 201, scheduled.text
        assert scheduled.json()["expected"] == 25
    finally:
        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming


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
