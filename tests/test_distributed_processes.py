"""The distributed mode as it runs: `cordon migrate`, `cordon bootstrap`, an API process and a
worker process on the real PostgreSQL, RabbitMQ and Redis. A resident registered over HTTP
leaves the outbox through the worker's relay and reaches a queue bound to the exchange; a
process given the default secret refuses to start."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.events import Envelope
from shared.settings import Settings
from tests.conftest import (
    AMQP_URL,
    PG_URL,
    REDIS_URL,
    drop_everything,
    sign_in,
    skip_unless_reachable,
    topology_queues,
)
from tests.support import eventually, make_compound, make_resident

CORDON = str(Path(sys.executable).parent / "cordon")
PASSWORD = "operator-pass-1"


class Processes:
    """Cordon processes started by a test, with their output kept for failure messages."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [CORDON, *args],
            cwd=self.workdir,  # away from any developer's .env
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running.append((name, process))

    async def finish(self, name: str, *, within: float = 60) -> int:
        [process] = [p for n, p in self.running if n == name]

        async def exited() -> bool:
            return process.poll() is not None

        await eventually(exited, within=within, what=f"`cordon {name}` to exit")
        return int(process.returncode)

    def output(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def alive(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self.running)

    def stop_all(self) -> None:
        for _, process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in self.running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cordon_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
    env.update(values)
    return env


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[tuple[Processes, Settings]]:
    skip_unless_reachable("PostgreSQL", "RabbitMQ", "Redis")
    prefix = f"d{uuid.uuid4().hex[:10]}_"
    env = cordon_env(
        CORDON_MODE="distributed",
        CORDON_SECRET_KEY=secrets.token_hex(32),
        CORDON_DATABASE_URL=PG_URL,
        CORDON_BROKER_URL=AMQP_URL,
        CORDON_REDIS_URL=REDIS_URL,
        CORDON_SCHEMA_PREFIX=prefix,
        CORDON_EXCHANGE=f"cordon_{prefix}",
        CORDON_RELAY_INTERVAL_SECONDS="0.2",
        CORDON_DATA_DIR=str(tmp_path / "data"),
    )
    processes = Processes(tmp_path, env)
    where = Settings(
        data_dir=tmp_path / "data",
        database_url=PG_URL,
        broker_url=AMQP_URL,
        schema_prefix=prefix,
        exchange=env["CORDON_EXCHANGE"],
    )
    try:
        yield processes, where
    finally:
        processes.stop_all()
        await drop_everything(where, topology_queues(where))


@pytest.fixture
async def resident_queue(
    deployment: tuple[Processes, Settings],
) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A test queue bound to the deployment's exchange for registry.resident.registered."""
    _, where = deployment
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        where.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="registry.resident.registered")
    try:
        yield queue
    finally:
        await connection.close()


async def test_api_and_worker_processes_relay_a_write_and_refuse_the_default_secret(
    deployment: tuple[Processes, Settings], resident_queue: aio_pika.abc.AbstractQueue
) -> None:
    processes, where = deployment
    processes.start("migrate", "migrate")
    # Meanwhile (process start-up is the slow part): no process runs on the default secret.
    default_secret = {k: v for k, v in processes.env.items() if k != "CORDON_SECRET_KEY"}
    processes.start("refused", "serve", "--service", "registry", env=default_secret)
    assert await processes.finish("migrate") == 0, processes.output("migrate")

    port = free_port()
    town = ["--town-code", "T1", "--town-name", "Riverside Street"]
    operator = ["--username", "operator", "--password", PASSWORD]
    processes.start("bootstrap", "bootstrap", *town, *operator)
    processes.start("serve", "serve", "--service", "registry", "--port", str(port))
    processes.start("worker", "worker", "--service", "registry")
    assert await processes.finish("bootstrap") == 0, processes.output("bootstrap")

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:

        async def ready() -> bool:
            assert processes.alive("serve"), processes.output("serve")
            try:
                return (await api.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, within=30, what="the API's /readyz")
        headers = await sign_in(api, "operator", PASSWORD)
        [riverside] = (await api.get("/v1/towns", headers=headers)).json()
        compound = await make_compound(api, uuid.UUID(riverside["id"]), headers, code="D1")
        resident = await make_resident(api, compound, headers, name="李建国")

    received: list[Envelope] = []

    async def relayed() -> bool:
        assert processes.alive("worker"), processes.output("worker")
        message = await resident_queue.get(no_ack=True, fail=False)
        if message is not None:
            received.append(Envelope.from_bytes(message.body))
        return any(e.payload["resident"]["id"] == resident["id"] for e in received)

    await eventually(relayed, within=30, what="registry.resident.registered on the exchange")
    [event] = [e for e in received if e.payload["resident"]["id"] == resident["id"]]
    assert event.type == "registry.resident.registered"
    assert event.producer == "registry"
    assert str(event.compound_id) == compound.id
    assert event.payload["resident"]["name"] == "李建国"

    engine = create_async_engine(PG_URL)
    try:

        async def outbox_empty() -> bool:
            async with engine.connect() as connection:
                outbox = f'"{where.service_schema("registry")}".outbox'
                return await connection.scalar(text(f"SELECT count(*) FROM {outbox}")) == 0

        await eventually(outbox_empty, within=10, what="an empty outbox")
    finally:
        await engine.dispose()

    assert await processes.finish("refused") != 0, "`cordon serve` ran on the default secret"
    refusal = processes.output("refused")
    assert "cordon: refusing to start" in refusal
    assert "the distributed mode refuses the default or a short CORDON_SECRET_KEY" in refusal
    assert "Traceback" not in refusal
