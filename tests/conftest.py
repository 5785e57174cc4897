"""Fixtures for both runtime modes.

Every test that takes ``platform`` (or anything built on it) runs twice: in the embedded mode
(SQLite files, the in-process bus, in-memory key-value) and against the real PostgreSQL,
RabbitMQ and Redis of this machine. Each run gets its own schemas, exchange and queues.
With CI=true an unreachable service fails the run instead of skipping it.
"""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from cordon.app import create_app
from cordon.platform import Platform
from cordon.services import ALL
from shared.bus.lanes import urgent_lane
from shared.bus.rabbit import queue_objects
from shared.service import ServiceSpec, topology
from shared.settings import Settings
from tests.migrated import empty, restore

PG_URL = os.environ.get(
    "CORDON_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
AMQP_URL = os.environ.get("CORDON_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("CORDON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVICES = {
    "PostgreSQL": ("127.0.0.1", 5432),
    "RabbitMQ": ("127.0.0.1", 5672),
    "Redis": ("127.0.0.1", 6379),
}
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unreachable() -> list[str]:
    down = []
    for name, address in SERVICES.items():
        try:
            socket.create_connection(address, timeout=2).close()
        except OSError:
            down.append(name)
    return down


def pytest_sessionstart(session: pytest.Session) -> None:
    down = _unreachable()
    if down and IN_CI:
        raise pytest.UsageError(f"CI needs the real services, unreachable: {', '.join(down)}")
    if "PostgreSQL" not in down and not hasattr(session.config, "workerinput"):
        asyncio.run(_vacuum())


async def _vacuum() -> None:
    """Tests create and drop schemas by the hundred: on a PostgreSQL without autovacuum (as
    on the development machines here), their dead catalog rows pile up run after run and
    slow every later run's DDL (a suite of 12 minutes took 24 after a day's runs). The run
    starts from clean catalogs (a second on a test database)."""
    import asyncpg

    connection = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute("VACUUM")
    finally:
        await connection.close()


BACKENDS = ["embedded", "services"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "services":
        down = _unreachable()
        if down:
            pytest.skip(f"real services unreachable here: {', '.join(down)}")
    return str(request.param)


@pytest.fixture
def postgresql_url() -> str:
    """For what only makes sense on PostgreSQL, such as the benchmarks' raw COPY."""
    if "PostgreSQL" in _unreachable():
        pytest.skip("PostgreSQL unreachable here")
    return PG_URL


# On the real services, every test of this process shares one prefix: its schemas are
# dropped after each test, but its exchange and consumer queues are declared once and only
# purged between tests. Creating and deleting some ninety quorum queues took two seconds a
# test (most of the suite's time) and, with several test processes, wedged RabbitMQ.
POOLED_PREFIX = f"t{uuid.uuid4().hex[:10]}_"
POOLED_EXCHANGE = f"cordon_{POOLED_PREFIX}"
_pooled_queues: set[str] = set()


def _is_pooled(settings: Settings) -> bool:
    return bool(settings.broker_url) and settings.exchange == POOLED_EXCHANGE


@pytest.fixture
async def settings(backend: str, tmp_path: Path) -> AsyncIterator[Settings]:
    if backend == "embedded":
        yield _settings(backend, tmp_path, prefix=f"t{uuid.uuid4().hex[:10]}_")
        return
    pooled = _settings(backend, tmp_path, prefix=POOLED_PREFIX)
    yield pooled
    # Whatever the test started (a platform, `cordon run`, replicas), the next one starts
    # from empty schemas, queues and keys.
    _pooled_queues.update(topology_queues(pooled))
    await drop_everything(pooled, [])
    await _forget_keys(pooled)


def _settings(backend: str, tmp_path: Path, *, prefix: str) -> Settings:
    common = {
        "data_dir": tmp_path / "data",
        "schema_prefix": prefix,
        "secret_key": "test-secret-" + "x" * 40,
        "retry_base_seconds": 0.05,
        "relay_interval_seconds": 0.05,
        "log_json": False,
        # A loaded machine's directory lags longer than the 3 s a deployment waits; the lag's
        # own tests set theirs (tests/test_directory_lag.py).
        "projection_wait_seconds": 15.0,
        # Thousands of accounts are made and signed in: argon2 at its least cost (a fifth of
        # a second of a core each at the standard one). Its own tests use the standard one.
        "password_hash_cost": "least",
    }
    if backend == "embedded":
        return Settings(**common)
    return Settings(
        **common,
        database_url=PG_URL,
        broker_url=AMQP_URL,
        redis_url=REDIS_URL,
        exchange=f"cordon_{prefix}",
    )


def skip_unless_reachable(*names: str) -> None:
    """Skip when one of the named services is down (CI fails at session start instead)."""
    down = [name for name in _unreachable() if name in names]
    if down:
        pytest.skip(f"unreachable here: {', '.join(down)}")


async def delete_bus_objects(
    broker_url: str, *, queues: list[str], delivery_limit: int, exchange: str | None = None
) -> None:
    """Delete consumer queues with their retry and parking queues (and the exchange)."""
    names = [n for queue in queues for n in queue_objects(queue, delivery_limit=delivery_limit)]
    await delete_bus_objects_named(broker_url, names, exchange=exchange)


async def queue_cleanup(platform: Platform, queues: list[str]) -> None:
    """Delete queues a test declared itself (RabbitMQ keeps them; SQLite goes with tmp)."""
    if platform.settings.broker_url:
        await delete_bus_objects(
            platform.settings.broker_url,
            queues=queues,
            delivery_limit=platform.settings.delivery_limit,
        )


def topology_queues(settings: Settings) -> list[str]:
    names = []
    for subscription in topology(ALL, settings=settings):
        names += queue_objects(subscription.queue, delivery_limit=settings.delivery_limit)
    return names


async def _purge(broker_url: str, queues: set[str]) -> None:
    import aio_pika
    from aiormq.exceptions import ChannelNotFoundEntity

    connection = await aio_pika.connect(broker_url)
    channel = await connection.channel()
    for queue in sorted(queues):
        try:
            await (await channel.get_queue(queue, ensure=False)).purge()
        except ChannelNotFoundEntity:
            # Never declared in this run (or deleted by its test): the channel closed.
            channel = await connection.channel()
    await connection.close()


async def _forget_keys(settings: Settings) -> None:
    if not settings.redis_url:
        return
    import redis.asyncio as redis

    client = redis.from_url(settings.redis_url)
    keys = [key async for key in client.scan_iter(match=f"{settings.schema_prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The pooled queues and exchanges go when the run ends, as a test's own would."""
    if _pooled_queues:
        asyncio.run(_delete_pooled())


async def _delete_pooled() -> None:
    await delete_bus_objects_named(AMQP_URL, sorted(_pooled_queues), exchange=POOLED_EXCHANGE)
    engine = create_async_engine(PG_URL)
    async with engine.begin() as connection:
        for spec in ALL:
            await connection.execute(
                text(f'DROP SCHEMA IF EXISTS "{POOLED_PREFIX}{spec.name}" CASCADE')
            )
    await engine.dispose()


async def delete_bus_objects_named(
    broker_url: str, names: Sequence[str], *, exchange: str | None = None
) -> None:
    import aio_pika

    connection = await aio_pika.connect(broker_url)
    channel = await connection.channel()
    for name in names:
        await channel.queue_delete(name)
    if exchange is not None:
        await channel.queue_delete(f"{exchange}.unrouted")
        for name in (exchange, urgent_lane(exchange), f"{exchange}.unrouted"):
            await channel.exchange_delete(name)
    await connection.close()


async def drop_everything(settings: Settings, queues: list[str]) -> None:
    if settings.database_url and _is_pooled(settings):
        await empty(settings, ALL)
    elif settings.database_url:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as connection:
            for spec in ALL:
                schema = settings.service_schema(spec.name)
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
    if settings.broker_url and _is_pooled(settings):
        _pooled_queues.update(queues)
        await _purge(settings.broker_url, {*_pooled_queues, f"{settings.exchange}.unrouted"})
    elif settings.broker_url:
        await delete_bus_objects_named(
            settings.broker_url,
            [*queues, f"{settings.exchange}.unrouted"],
            exchange=settings.exchange,
        )


def queue_names(platform: Platform) -> list[str]:
    names = []
    for subscription in topology(platform.topology, settings=platform.settings):
        names += queue_objects(subscription.queue, delivery_limit=platform.settings.delivery_limit)
    return names


@asynccontextmanager
async def started(
    settings: Settings, specs: Sequence[ServiceSpec] = ALL
) -> AsyncIterator[Platform]:
    """A platform of these services, migrated; its schemas and queues dropped afterwards."""
    platform = Platform(settings, specs)
    await restore(settings, specs)
    await platform.start(migrate=False)
    try:
        yield platform
    finally:
        queues = queue_names(platform)
        await platform.close()
        await drop_everything(settings, queues)


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    async with started(settings) as platform:
        yield platform


@pytest.fixture
async def workers(platform: Platform) -> AsyncIterator[None]:
    """Relays and consumers running in the background, as in the embedded process."""
    task = asyncio.create_task(platform.run_workers())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(platform, with_workers=False, migrate=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cordon.test") as http:
        yield http


@dataclass
class Town:
    id: uuid.UUID
    operator: dict[str, str]
    sign_in: Callable[[str, str], Awaitable[dict[str, str]]]


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await client.post(
        "/v1/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def make_town(
    platform: Platform, client: httpx.AsyncClient, *, code: str, name: str, operator: str
) -> Town:
    """A town with its operator signed in (headers in ``town.operator``)."""
    from services.registry.demo import bootstrap_town

    password = f"{operator}-pass-1"
    town_id = await bootstrap_town(
        platform.runtime("registry"),
        town_code=code,
        town_name=name,
        username=operator,
        password=password,
    )
    headers = await sign_in(client, operator, password)

    async def login(username: str, password: str) -> dict[str, str]:
        return await sign_in(client, username, password)

    return Town(id=town_id, operator=headers, sign_in=login)


@pytest.fixture
async def town(platform: Platform, client: httpx.AsyncClient) -> Town:
    """A town with its operator signed in (headers in ``town.operator``)."""
    return await make_town(
        platform, client, code="T1", name="Riverside Street", operator="operator"
    )
