"""Worker tasks are supervised: one that crashes is restarted on its own while the others go
on, and /readyz names it (503 while it is down past the grace)."""

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from cordon.platform import Platform
from shared.auth import Principal
from shared.contracts.registry import SnapshotStarted
from shared.ids import new_id
from shared.service import ServiceRuntime
from shared.settings import Settings
from tests.support import eventually


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "worker_restart_seconds": 0.2,
            "worker_restart_cap_seconds": 1.0,
            "worker_grace_seconds": 0.3,
        }
    )


async def emit_one(runtime: ServiceRuntime) -> None:
    async with runtime.uow(Principal.system("test")) as uow:
        uow.emit(SnapshotStarted(resync_id=new_id(), town_ids=[new_id()]))
        await uow.commit()


def backlog_is(runtime: ServiceRuntime, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await runtime.relay.backlog() == count

    return check


def readiness_is(client: httpx.AsyncClient, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await client.get("/readyz")).status_code == status

    return check


async def test_a_crashed_worker_task_is_restarted_alone_and_readyz_names_it(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, testing = platform.runtime("registry"), platform.runtime("testing")
    crashing = True
    publish_pending = registry.relay.publish_pending

    async def buggy() -> int:
        if crashing:
            raise ValueError("a bug in the relay")
        return await publish_pending()

    monkeypatch.setattr(registry.relay, "publish_pending", buggy)
    workers = asyncio.create_task(platform.run_workers())
    try:
        await emit_one(registry)
        # The relay is restarted and crashes again while it has an event to publish: read
        # the answer that saw it down (the next one may catch it between two crashes).
        seen: list[httpx.Response] = []

        async def down() -> bool:
            seen.append(await client.get("/readyz"))
            return seen[-1].status_code == 503

        await eventually(down, within=10, what="/readyz to answer 503")
        answer = seen[-1].json()
        assert answer["checks"]["workers"] is False
        relay = answer["workers"]["registry.relay"]
        assert relay["last_error"] == "ValueError: a bug in the relay"
        others = {name: w for name, w in answer["workers"].items() if name != "registry.relay"}
        assert "testing.relay" in others and "testing.directory" in others
        assert all(w["up"] and w["restarts"] == 0 for w in others.values()), others

        # The other tasks keep working meanwhile: testing's relay still publishes.
        await emit_one(testing)
        await eventually(backlog_is(testing, 0), what="testing's relay to publish")
        assert await registry.relay.backlog() == 1

        crashing = False
        await eventually(backlog_is(registry, 0), what="the restarted relay to publish")
        await eventually(readiness_is(client, 200), within=10, what="/readyz to answer 200")
        relay = (await client.get("/readyz")).json()["workers"]["registry.relay"]
        assert relay["up"] is True and relay["restarts"] >= 1
        assert not workers.done()
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)


async def test_readyz_answers_503_when_the_worker_loop_itself_has_ended(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    workers = asyncio.create_task(platform.run_workers())
    await eventually(readiness_is(client, 200), what="workers to start")
    workers.cancel()
    await asyncio.gather(workers, return_exceptions=True)
    answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["workers"]["registry.relay"]["up"] is False
