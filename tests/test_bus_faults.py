"""Faults on the bus, on both backends: a relay killed between publishing and deleting, a
redelivered event, a consumer cancelled mid-stream, the broker connection cut while the relay
publishes. Each test counts a consumer's committed effects: nothing lost, nothing doubled."""

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Table, Uuid, func, select

from cordon.platform import Platform, make_transport
from shared.auth import Principal
from shared.bus.outbox import Relay
from shared.bus.rabbit import RabbitTransport
from shared.bus.transport import Outgoing, Transport, TransportError, backoff_seconds
from shared.contracts.registry import SnapshotStarted
from shared.db import SequenceInt, new_metadata
from shared.events import Envelope
from shared.ids import new_id
from shared.kv import KeyValue, RedisKeyValue
from shared.migrations import upgrade
from shared.service import Consumer, ServiceRuntime
from shared.settings import Settings
from shared.uow import UnitOfWork
from tests.conftest import (
    PG_URL,
    REDIS_URL,
    drop_everything,
    queue_cleanup,
    skip_unless_reachable,
)
from tests.proxy import TcpProxy
from tests.support import eventually

effects_metadata = new_metadata()
effects = Table(
    "test_effects",
    effects_metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    # Not unique on purpose: a doubled effect must show as a second row.
    Column("event_id", Uuid, nullable=False),
)


class Effects:
    """The registry with one more consumer, whose effect is a row per event it handles."""

    def __init__(
        self,
        platform: Platform,
        *,
        transport: Transport | None = None,
        kv: KeyValue | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.failures_left = 0
        self.consumer = Consumer("effects", ("registry.snapshot.started",), self._record)
        registry = platform.runtime("registry")
        self.runtime = ServiceRuntime(
            dataclasses.replace(registry.spec, consumers=(self.consumer,)),
            settings=settings or platform.settings,
            transport=transport or platform.transport,
            kv=kv or platform.kv,
        )
        self.queue = self.runtime.subscription(self.consumer).queue

    async def _record(self, uow: UnitOfWork, envelope: Envelope) -> None:
        await uow.session.execute(effects.insert().values(event_id=envelope.id))
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("the handler failed after writing its effect")

    async def start(self) -> None:
        async with self.runtime.database.engine.begin() as connection:
            await connection.run_sync(effects_metadata.create_all)
        await self.runtime.declare()

    async def emit(self, count: int) -> list[uuid.UUID]:
        async with self.runtime.uow(Principal.system("test")) as uow:
            sent = [
                uow.emit(SnapshotStarted(resync_id=new_id(), town_ids=[])) for _ in range(count)
            ]
            await uow.commit()
        return sent

    async def counts(self) -> tuple[int, int]:
        """(effects, distinct events with an effect)."""
        async with self.runtime.database.session() as session:
            row = (
                await session.execute(
                    select(func.count(), func.count(effects.c.event_id.distinct()))
                )
            ).one()
        return int(row[0]), int(row[1])

    async def event_ids(self) -> set[uuid.UUID]:
        async with self.runtime.database.session() as session:
            return set((await session.scalars(select(effects.c.event_id))).all())

    def duplicates(self) -> int:
        labels = {"service": "registry", "queue": self.queue, "state": "duplicate"}
        return int(REGISTRY.get_sample_value("cordon_messages_total", labels) or 0)

    def reached(self, count: int) -> Any:
        async def check() -> bool:
            return (await self.counts())[0] >= count

        return check

    def consume(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.runtime.consume(self.consumer))

    async def close(self) -> None:
        await self.runtime.close()


@pytest.fixture
async def counting(platform: Platform) -> AsyncIterator[Effects]:
    counting = Effects(platform)
    await counting.start()
    try:
        yield counting
    finally:
        await counting.close()
        await queue_cleanup(platform, [counting.queue])


def count_passes(relay: Relay, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the relay's passes over the outbox (a busy loop shows as thousands)."""
    passes = [0]
    publish_pending = relay.publish_pending

    async def counted() -> int:
        passes[0] += 1
        return await publish_pending()

    monkeypatch.setattr(relay, "publish_pending", counted)
    return passes


async def stop(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_relay_killed_after_the_confirms_but_before_the_delete_publishes_again_and_the_effect_happens_once(  # noqa: E501
    counting: Effects, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = await counting.emit(20)
    relay = counting.runtime.relay
    transport = counting.runtime.transport
    confirmed = transport.publish

    async def publish_then_die(batch: Sequence[Outgoing]) -> None:
        await confirmed(batch)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)  # the kill lands here, before the outbox rows are deleted

    monkeypatch.setattr(transport, "publish", publish_then_die)
    killed = asyncio.create_task(relay.run(counting.runtime.wakeups()))
    await asyncio.gather(killed, return_exceptions=True)
    monkeypatch.undo()
    assert killed.cancelled()
    assert await relay.backlog() == 20

    consumer = counting.consume()
    restarted = asyncio.create_task(relay.run(counting.runtime.wakeups()))
    try:
        await eventually(counting.reached(20), what="the first copies to take effect")

        async def second_copies_absorbed() -> bool:
            return counting.duplicates() == 20

        await eventually(second_copies_absorbed, what="the second copies to reach the inbox")
        assert await relay.backlog() == 0
    finally:
        await stop(consumer, restarted)
    total, distinct = await counting.counts()
    assert (total, distinct) == (20, 20)
    assert await counting.runtime.transport.depth(counting.queue) == 0
    assert await counting.event_ids() == set(sent)


async def test_process_applies_an_event_once_however_often_and_concurrently_it_comes(
    counting: Effects,
) -> None:
    runtime, consumer, queue = counting.runtime, counting.consumer, counting.queue
    twice, concurrent, failing = (
        Envelope.wrap(
            SnapshotStarted(resync_id=new_id(), town_ids=[]), producer="registry", correlation_id=c
        )
        for c in ("c-1", "c-2", "c-3")
    )

    assert await runtime.process(consumer, twice, queue=queue) is True
    assert await runtime.process(consumer, twice, queue=queue) is False
    results = await asyncio.gather(
        *(runtime.process(consumer, concurrent, queue=queue) for _ in range(4))
    )
    assert sorted(results) == [False, False, False, True]

    # A handler failing after its write leaves neither the effect nor the inbox claim behind,
    # so the next delivery applies it.
    counting.failures_left = 1
    with pytest.raises(RuntimeError):
        await runtime.process(consumer, failing, queue=queue)
    assert await counting.counts() == (2, 2)
    assert await runtime.process(consumer, failing, queue=queue) is True

    assert await counting.counts() == (3, 3)
    assert await counting.event_ids() == {twice.id, concurrent.id, failing.id}


async def test_a_consumer_cancelled_mid_stream_and_restarted_loses_nothing_and_doubles_nothing(
    counting: Effects,
) -> None:
    events = 300
    await counting.emit(events)
    assert await counting.runtime.relay.drain() == events

    for cancel_at in (40, 120, 200):
        consumer = counting.consume()
        try:
            await eventually(counting.reached(cancel_at), what=f"{cancel_at} effects")
        finally:
            await stop(consumer)
    consumer = counting.consume()
    try:
        await eventually(counting.reached(events), what="every effect")
        await asyncio.sleep(0.3)
    finally:
        await stop(consumer)

    assert await counting.counts() == (events, events)
    assert await counting.runtime.transport.depth(counting.queue) == 0
    assert await counting.runtime.transport.parked(counting.queue) == []


@pytest.mark.parametrize("backend", ["services"], indirect=True)
async def test_a_worker_whose_broker_connection_is_cut_mid_stream_delivers_every_event_once(
    platform: Platform,
) -> None:
    settings = platform.settings
    assert settings.broker_url is not None
    proxy = TcpProxy(target_host="127.0.0.1", target_port=5672)
    await proxy.start()
    proxied = RabbitTransport(
        url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/?reconnect_interval=0.2",
        exchange=settings.exchange,
        delivery_limit=settings.delivery_limit,
        retry_base_seconds=settings.retry_base_seconds,
    )
    await proxied.connect()
    # Small relay batches, so that the cut falls between confirmed and unconfirmed ones.
    counting = Effects(
        platform, transport=proxied, settings=settings.model_copy(update={"relay_batch": 100})
    )
    await counting.start()
    worker: asyncio.Task[None] | None = None
    events = 1000
    try:
        await counting.emit(events)
        worker = asyncio.create_task(counting.runtime.run_worker())

        async def publishing() -> bool:
            return await counting.runtime.relay.backlog() <= events - 200

        await eventually(publishing, what="the relay to start publishing")
        proxy.cut()
        backlog_at_cut = await counting.runtime.relay.backlog()

        async def broker_lost() -> bool:
            return not await proxied.ping()

        await eventually(broker_lost, within=5, what="ping to notice the cut")
        await asyncio.sleep(0.5)
        proxy.restore()

        await eventually(counting.reached(events), within=40, what="every effect")

        async def drained() -> bool:
            return await counting.runtime.relay.backlog() == 0

        await eventually(drained, what="an empty outbox")
        await asyncio.sleep(0.3)
        assert not worker.done(), "the worker died on the cut connection"
        assert await proxied.ping() is True
    finally:
        if worker is not None:
            await stop(worker)
        await counting.close()
        await proxied.close()
        await proxy.close()
        await queue_cleanup(platform, [counting.queue])

    assert 0 < backlog_at_cut < events, "the cut did not land mid-stream"
    assert proxy.connections >= 2, "the worker never reconnected"
    assert await counting.counts() == (events, events)


@pytest.mark.parametrize("backend", ["services"], indirect=True)
async def test_a_dropped_redis_connection_neither_spins_the_relay_nor_silences_its_wakeups(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = platform.settings
    redis_port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(target_host="127.0.0.1", target_port=redis_port)
    await proxy.start()
    proxied = RedisKeyValue(f"redis://127.0.0.1:{proxy.port}/0", namespace=settings.schema_prefix)
    counting = Effects(
        platform,
        kv=proxied,
        settings=settings.model_copy(update={"relay_interval_seconds": 0.2}),
    )
    await counting.start()
    relay = counting.runtime.relay
    passes = count_passes(relay, monkeypatch)
    heard = [0]

    async def listen() -> None:
        async for _ in proxied.signals("probe"):
            heard[0] += 1

    async def probe_heard() -> bool:
        before = heard[0]
        await platform.kv.signal("probe")
        await asyncio.sleep(0.1)
        return heard[0] > before

    tasks = [
        asyncio.create_task(relay.run(counting.runtime.wakeups())),
        asyncio.create_task(listen()),
    ]
    try:
        await eventually(probe_heard, within=5, what="the listener to subscribe")
        proxy.cut()
        before = passes[0]
        await asyncio.sleep(1.5)
        # Polling every 0.2 s and a wake-up per resubscription attempt, not a busy loop.
        assert passes[0] - before <= 15, f"{passes[0] - before} relay passes in 1.5 s"
        proxy.restore()
        await eventually(probe_heard, within=5, what="signals after Redis came back")
        await counting.emit(5)

        async def published() -> bool:
            return await relay.backlog() == 0

        await eventually(published, within=5, what="the relay to publish after the outage")
        assert not any(task.done() for task in tasks)
    finally:
        await stop(*tasks)
        await counting.close()
        await proxied.close()
        await proxy.close()
        await queue_cleanup(platform, [counting.queue])


async def test_a_relay_whose_wakeup_source_ends_falls_back_to_polling(
    counting: Effects, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = counting.runtime.relay
    passes = count_passes(relay, monkeypatch)

    async def broken_wakeups() -> AsyncIterator[None]:
        raise RuntimeError("the key-value store went away")
        yield None

    started = time.monotonic()
    task = asyncio.create_task(relay.run(broken_wakeups()))
    try:
        await asyncio.sleep(0.5)
        await counting.emit(3)

        async def published() -> bool:
            return await relay.backlog() == 0

        await eventually(published, within=5, what="the polling relay to publish")
        assert not task.done()
    finally:
        await stop(task)
    polls = (time.monotonic() - started) / counting.runtime.settings.relay_interval_seconds
    assert passes[0] <= 2 * polls + 5, f"{passes[0]} relay passes for {polls:.0f} polls"


async def test_a_database_outage_longer_than_the_retry_budget_parks_nothing_and_applies_each_event_once(  # noqa: E501
    platform: Platform,
) -> None:
    """The consumer's PostgreSQL goes through a proxy that is cut for many times the whole
    retry budget (three tries, 0.25 s of back-off in all) while messages are in flight, on
    either transport: the outage pauses the consumer without spending a try."""
    skip_unless_reachable("PostgreSQL")
    proxy = TcpProxy(target_host="127.0.0.1", target_port=5432)
    await proxy.start()
    settings = platform.settings.model_copy(
        update={
            "database_url": PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
            "delivery_limit": 3,
            "retry_base_seconds": 0.05,
        }
    )
    budget = sum(backoff_seconds(n, settings.retry_base_seconds) for n in (1, 2))
    transport = make_transport(settings)
    await transport.connect()
    counting = Effects(platform, transport=transport, settings=settings)
    await upgrade(counting.runtime.database, counting.runtime.spec.migrations)
    await counting.start()
    events, outage = 200, 3.0
    consumer: asyncio.Task[None] | None = None
    try:
        await counting.emit(events)
        assert await counting.runtime.relay.drain() == events
        consumer = counting.consume()
        await eventually(counting.reached(20), what="the first effects")
        proxy.cut()
        started = time.monotonic()
        await asyncio.sleep(outage)
        assert time.monotonic() - started > 10 * budget
        assert await transport.parked(counting.queue) == [], "the outage parked messages"
        proxy.restore()
        await eventually(counting.reached(events), within=60, what="every effect")
        await asyncio.sleep(0.3)
        assert await counting.counts() == (events, events)
        assert await transport.parked(counting.queue) == []
        assert await transport.depth(counting.queue) == 0
    finally:
        if consumer is not None:
            await stop(consumer)
        await counting.close()
        await transport.close()
        await proxy.close()
        await queue_cleanup(platform, [counting.queue])
        if platform.settings.database_url is None:
            await drop_everything(settings.model_copy(update={"database_url": PG_URL}), [])


@pytest.mark.parametrize("backend", ["services"], indirect=True)
async def test_a_publish_the_broker_never_confirms_fails_after_its_timeout(
    platform: Platform,
) -> None:
    settings = platform.settings
    proxy = TcpProxy(target_host="127.0.0.1", target_port=5672)
    await proxy.start()
    proxied = RabbitTransport(
        url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/",
        exchange=settings.exchange,
        delivery_limit=settings.delivery_limit,
        retry_base_seconds=settings.retry_base_seconds,
        publish_timeout_seconds=0.5,
    )
    await proxied.connect()
    try:
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"not confirmed within 0\.5s"):
            await proxied.publish([Outgoing(str(new_id()), "registry.snapshot.started", b"{}")])
        assert time.monotonic() - started < 3
    finally:
        proxy.restore()
        await proxied.close()
        await proxy.close()
