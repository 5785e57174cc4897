"""The bus topology: declared for the whole deployment before anyone publishes, and tolerant
of what operators tune (the number of tries, the retry delay), which may change between two
starts without deleting a queue."""

import asyncio

import pytest

from cordon.platform import Platform
from cordon.services import named
from services.registry.app import SPEC as REGISTRY
from services.testing.app import SPEC as TESTING
from shared.auth import Principal
from shared.bus.transport import UNROUTED, Outgoing, Subscription
from shared.contracts.registry import SnapshotStarted
from shared.events import Envelope
from shared.ids import new_id
from shared.settings import Settings
from tests.conftest import drop_everything, queue_cleanup, queue_names
from tests.support import eventually
from tests.test_bus_faults import Effects


async def test_a_changed_delivery_limit_and_retry_delay_apply_at_the_next_start_losing_nothing(
    platform: Platform,
) -> None:
    before = Effects(platform)
    await before.start()
    sent = await before.emit(10)
    assert await before.runtime.relay.drain() == 10
    await before.close()

    # The operator changes CORDON_DELIVERY_LIMIT (5 → 3) and the retry delay, and restarts.
    settings = platform.settings.model_copy(
        update={"delivery_limit": 3, "retry_base_seconds": 0.02}
    )
    restarted = Platform(settings, named(None))
    await restarted.start(migrate=False)
    after = Effects(restarted)
    try:
        await after.start()
        consumer = after.consume()
        try:
            await eventually(after.reached(10), what="the events published before the restart")
            assert await after.event_ids() == set(sent)

            after.failures_left = 10**6
            [failing] = await after.emit(1)
            await after.runtime.relay.drain()

            async def parked() -> bool:
                return len(await restarted.transport.parked(after.queue)) == 1

            await eventually(parked, within=10, what="the failing event to be parked")
            [held] = await restarted.transport.parked(after.queue)
            assert held.event_id == str(failing)
            assert held.attempts == 3, "the new delivery limit did not apply"
        finally:
            consumer.cancel()
    finally:
        await after.close()
        await restarted.close()
        # The effects queue is the test's own, not the deployment's.
        await queue_cleanup(platform, [after.queue])


async def test_an_event_published_before_its_consumer_ever_started_waits_in_its_queue(
    settings: Settings,
) -> None:
    """The registry is deployed alone first (the testing service runs nowhere yet): what it
    publishes waits in testing's queue, declared by the registry's start, not dropped."""
    first = Platform(settings, named([REGISTRY.name]))
    second = Platform(settings, named([TESTING.name]))
    try:
        await first.start()
        registry = first.runtime(REGISTRY.name)
        async with registry.uow(Principal.system("test")) as uow:
            sent = uow.emit(SnapshotStarted(resync_id=new_id(), town_ids=[new_id()]))
            await uow.commit()
        assert await registry.relay.drain() == 1

        await second.start()
        directory = next(c for c in TESTING.consumers if c.name == "directory")
        queue = second.runtime(TESTING.name).subscription(directory).queue
        assert await second.transport.depth(queue) == 1
        assert await second.transport.parked(UNROUTED) == []
        testing = second.runtime(TESTING.name)
        envelopes = []

        async def keep(envelope: Envelope) -> None:
            envelopes.append(envelope)

        consumer = asyncio.create_task(
            second.transport.consume(testing.subscription(directory), keep)
        )
        try:
            await eventually(lambda: _true_if(envelopes), what="the early event to arrive")
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        assert [e.id for e in envelopes] == [sent]
    finally:
        queues = queue_names(first)
        await first.close()
        await second.close()
        await drop_everything(settings, queues)


async def _true_if(items: list[Envelope]) -> bool:
    return bool(items)


@pytest.mark.parametrize("backend", ["services"], indirect=True)
async def test_queues_an_older_version_declared_are_kept_not_refused(
    platform: Platform,
) -> None:
    """Queues from before tuned values left the queue arguments (retry queues with a TTL, a
    quorum parking queue, the main queue with the old limit): starting succeeds, and messages
    go round the new back-off queues with the delays of now and get parked."""
    import aio_pika

    settings = platform.settings
    assert settings.broker_url is not None
    queue = f"{settings.schema_prefix}legacy"
    connection = await aio_pika.connect(settings.broker_url)
    channel = await connection.channel()
    dead_letter = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    await channel.declare_queue(
        f"{queue}.parking", durable=True, arguments={"x-queue-type": "quorum"}
    )
    for step in range(1, settings.delivery_limit):
        await channel.declare_queue(
            f"{queue}.retry.{step}",
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": 60_000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
                **dead_letter,
            },
        )
    await channel.declare_queue(
        queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": 5,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": f"{queue}.parking",
            **dead_letter,
        },
    )
    await connection.close()
    subscription = Subscription(queue, ("legacy.#",))
    try:
        await platform.transport.declare(subscription)
        tries: list[str] = []

        async def failing(envelope: Envelope) -> None:
            tries.append(envelope.type)
            raise RuntimeError("still failing")

        consumer = asyncio.create_task(platform.transport.consume(subscription, failing))
        try:
            body = Envelope(
                type="legacy.thing.done", version=1, producer="t", correlation_id="c", payload={}
            )
            await platform.transport.publish(
                [Outgoing(str(body.id), "legacy.thing.done", body.to_bytes())]
            )

            async def parked() -> bool:
                return len(await platform.transport.parked(queue)) == 1

            # A 60 s retry TTL left in place would hold the message far longer than this.
            await eventually(parked, within=15, what="the message to be retried and parked")
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        assert len(tries) == settings.delivery_limit
    finally:
        await queue_cleanup(platform, [queue])
        connection = await aio_pika.connect(settings.broker_url)
        channel = await connection.channel()
        for step in range(1, settings.delivery_limit):
            await channel.queue_delete(f"{queue}.retry.{step}")  # the old names
        await connection.close()
