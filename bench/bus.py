"""The bus on PostgreSQL and RabbitMQ: the relay's published events/s and a consumer's
applied events/s (inbox claim, a write, commit, ack: one transaction per event), as ratios
to raw confirmed publishes (aio-pika, a window of in-flight confirms), a raw consume+ack of
as many messages of the same size, and raw INSERT+COMMIT round trips (the floor a
transaction per event sets), measured in the same run.

    .venv/bin/python -m bench.bus [--events 5000] [--concurrency 16]

The consumer runs one event at a time and then with ``--concurrency`` in flight, its events
spread over 64 compounds (the order key).
"""

import argparse
import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import TextIO

import aio_pika
import asyncpg
from sqlalchemy import text

from bench._rabbit import DEFAULT_URL as AMQP_URL
from bench.common import (
    Rate,
    asyncpg_dsn,
    emit,
    machine_line,
    pg_platform,
    ratio_line,
    stopwatch,
    unique_prefix,
)
from cordon.platform import Platform
from shared.auth import Principal
from shared.bus.lanes import urgent_lane
from shared.bus.rabbit import PUBLISH_WINDOW, queue_objects
from shared.contracts.testing import RoundOpened
from shared.events import Envelope
from shared.service import Consumer, ServiceRuntime
from shared.uow import UnitOfWork

COMPOUNDS = 64
EMIT_BATCH = 1_000


def broker_url() -> str:
    return os.environ.get("CORDON_BENCH_BROKER_URL", AMQP_URL)


def sample_body() -> bytes:
    """An envelope like the relay's (a small entity event), for the raw runs."""
    event = RoundOpened(round_id=uuid.uuid4(), town_id=uuid.uuid4(), at=datetime.now(UTC))
    return Envelope.wrap(event, producer="bench", correlation_id="bench").to_bytes()


async def raw_publish_and_consume(*, count: int, prefix: str) -> tuple[Rate, Rate]:
    """Confirmed persistent publishes to a quorum queue with a window of in-flight confirms,
    then consume+ack of them all with a prefetch: the broker's ceilings for what the relay
    and a consumer do."""
    connection = await aio_pika.connect(broker_url())
    body = sample_body()
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            f"{prefix}raw", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            f"{prefix}raw", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, routing_key="#")
        with stopwatch() as published:
            for start in range(0, count, PUBLISH_WINDOW):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            routing_key="testing.round.opened",
                        )
                        for _ in range(min(PUBLISH_WINDOW, count - start))
                    )
                )
        await channel.set_qos(prefetch_count=PUBLISH_WINDOW)
        acked = 0
        with stopwatch() as consumed:
            async with queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    acked += 1
                    if acked == count:
                        break
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
    finally:
        await connection.close()
    return (
        Rate("raw confirmed publishes (aio-pika, window)", count, published[0], "msgs"),
        Rate("raw consume+ack (prefetch)", count, consumed[0], "msgs"),
    )


async def raw_commits(*, schema: str, count: int, connections: int) -> Rate:
    """One INSERT and COMMIT per row on ``connections`` connections: the database's ceiling
    for a consumer that commits each event (what the inbox asks of it)."""
    links = [await asyncpg.connect(asyncpg_dsn(), server_settings={"search_path": schema})]
    links += [
        await asyncpg.connect(asyncpg_dsn(), server_settings={"search_path": schema})
        for _ in range(connections - 1)
    ]

    async def insert(link: asyncpg.Connection, rows: int) -> None:
        for _ in range(rows):
            await link.execute("INSERT INTO bench_applied VALUES (gen_random_uuid(), 'raw')")

    try:
        with stopwatch() as elapsed:
            await asyncio.gather(*(insert(link, count // connections) for link in links))
    finally:
        for link in links:
            await link.close()
    label = f"raw INSERT+COMMIT, {connections} connection{'s' if connections > 1 else ''}"
    return Rate(label, count // connections * connections, elapsed[0], "commits")


async def write_outbox(runtime: ServiceRuntime, *, count: int) -> None:
    compounds = [uuid.uuid4() for _ in range(COMPOUNDS)]
    for start in range(0, count, EMIT_BATCH):
        async with runtime.uow(Principal.system("bench")) as uow:
            for n in range(start, min(count, start + EMIT_BATCH)):
                event = RoundOpened(
                    round_id=uuid.uuid4(), town_id=uuid.uuid4(), at=datetime.now(UTC)
                )
                uow.emit(event, compound_id=compounds[n % COMPOUNDS])
            await uow.commit()


async def apply(uow: UnitOfWork, envelope: Envelope) -> None:
    """The consumer's effect: one row, in the transaction that claims the inbox."""
    await uow.session.execute(
        text("INSERT INTO bench_applied (event_id, consumer) VALUES (:id, :consumer)"),
        {"id": envelope.id, "consumer": uow.principal.id},
    )


def bench_consumer(concurrency: int) -> Consumer:
    return Consumer(f"bench{concurrency}", ("testing.round.opened",), apply, concurrency)


async def consume_all(runtime: ServiceRuntime, consumer: Consumer, *, count: int) -> Rate:
    """Time the consumer through the runtime's own processing (inbox, effect, commit) until
    it has applied ``count`` events."""
    subscription = runtime.subscription(consumer)
    done = asyncio.Event()
    handled = [0]

    async def handle(envelope: Envelope) -> None:
        if await runtime.process(consumer, envelope, queue=subscription.queue):
            handled[0] += 1
            if handled[0] == count:
                done.set()

    task = asyncio.create_task(runtime.transport.consume(subscription, handle))
    try:
        with stopwatch() as elapsed:
            await done.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    label = f"consumer applied, {consumer.concurrency} in flight (inbox + write)"
    return Rate(label, count, elapsed[0], "events")


async def delete_queues(platform: Platform, consumers: list[Consumer]) -> None:
    settings = platform.settings
    connection = await aio_pika.connect(broker_url())
    try:
        channel = await connection.channel()
        runtime = platform.runtime("testing")
        for consumer in consumers:
            queue = runtime.subscription(consumer).queue
            for name in queue_objects(queue, delivery_limit=settings.delivery_limit):
                await channel.queue_delete(name)
        for exchange in (settings.exchange, urgent_lane(settings.exchange)):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


async def run(*, count: int, concurrency: int, out: TextIO) -> list[Rate]:
    prefix = unique_prefix("bus")
    emit(out, f"bus on PostgreSQL and RabbitMQ, {count:,} events (schemas {prefix}*)")
    emit(out, machine_line())
    publish_raw, consume_raw = await raw_publish_and_consume(count=count, prefix=prefix)
    consumers = [bench_consumer(1), bench_consumer(concurrency)]
    async with pg_platform(["testing"], prefix=prefix, broker_url=broker_url()) as platform:
        runtime = platform.runtime("testing")
        try:
            async with runtime.database.session() as session, session.begin():
                await session.execute(
                    text("CREATE TABLE bench_applied (event_id uuid, consumer text)")
                )
            schema = platform.settings.service_schema("testing")
            commits = [
                await raw_commits(schema=schema, count=min(count, 3_000), connections=n)
                for n in (1, concurrency)
            ]
            for consumer in consumers:
                await platform.transport.declare(runtime.subscription(consumer))
            await write_outbox(runtime, count=count)
            with stopwatch() as relayed:
                assert await runtime.relay.drain() == count
            relay = Rate(
                "relay published (outbox → confirms → delete)", count, relayed[0], "events"
            )
            serial = await consume_all(runtime, consumers[0], count=count)
            parallel = await consume_all(runtime, consumers[1], count=count)
        finally:
            await delete_queues(platform, consumers)
    emit(
        out,
        publish_raw.line(),
        relay.line(),
        ratio_line(relay, publish_raw),
        consume_raw.line(),
        commits[0].line(),
        commits[1].line(),
        serial.line(),
        ratio_line(serial, consume_raw),
        ratio_line(serial, commits[0]),
        parallel.line(),
        ratio_line(parallel, consume_raw),
        ratio_line(parallel, commits[1]),
    )
    return [publish_raw, relay, consume_raw, *commits, serial, parallel]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(run(count=args.events, concurrency=args.concurrency, out=sys.stdout))


if __name__ == "__main__":
    main()
