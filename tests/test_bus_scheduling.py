"""Delayed and urgent delivery through the outbox, on both backends: an event scheduled for
later waits in the outbox (durable, so it survives a restart) and leaves once due; an urgent
one travels in the consumers' urgent lane."""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from cordon.platform import Platform
from cordon.services import ALL
from shared.auth import Principal
from shared.bus.transport import Subscription
from shared.contracts.testing import RoundOpened
from shared.events import Envelope
from tests.conftest import queue_cleanup
from tests.support import eventually


def opened() -> RoundOpened:
    return RoundOpened(round_id=uuid.uuid4(), town_id=uuid.uuid4(), at=datetime.now(UTC))


async def test_a_scheduled_event_leaves_when_due_and_survives_a_restart(
    platform: Platform,
) -> None:
    queue = f"{platform.settings.schema_prefix}test.scheduled"
    subscription = Subscription(queue, ("testing.round.opened",))
    await platform.transport.declare(subscription)
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        later = uow.emit(opened(), deliver_at=due)
        now = uow.emit(opened())
        await uow.commit()
    assert await platform.runtime("testing").relay.drain() == 1
    assert await platform.runtime("testing").relay.backlog() == 0
    await platform.close()

    restarted = Platform(platform.settings, ALL)
    await restarted.start(migrate=False)
    arrivals: dict[uuid.UUID, float] = {}

    async def arrive(envelope: Envelope) -> None:
        arrivals[envelope.id] = time.time()

    runtime = restarted.runtime("testing")
    tasks = [
        asyncio.create_task(restarted.transport.consume(subscription, arrive)),
        asyncio.create_task(runtime.relay.run(runtime.wakeups())),
    ]
    try:

        async def both() -> bool:
            return len(arrivals) == 2

        await eventually(both, within=10, what="the scheduled event")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await queue_cleanup(restarted, [queue])
        await restarted.close()

    assert arrivals[now] < due.timestamp()
    assert due.timestamp() <= arrivals[later] < due.timestamp() + 3


async def test_an_urgent_event_overtakes_the_bulk_events_emitted_before_it(
    platform: Platform,
) -> None:
    queue = f"{platform.settings.schema_prefix}test.lanes"
    subscription = Subscription(queue, ("testing.round.opened",))
    await platform.transport.declare(subscription)
    runtime = platform.runtime("testing")
    async with runtime.uow(Principal.system()) as uow:
        for _ in range(300):
            uow.emit(opened())
        urgent = uow.emit(opened(), urgent=True)
        await uow.commit()
    assert await runtime.relay.drain() == 301
    handled: list[uuid.UUID] = []

    async def handle(envelope: Envelope) -> None:
        handled.append(envelope.id)
        await asyncio.sleep(0.002)

    consumer = asyncio.create_task(platform.transport.consume(subscription, handle))
    try:

        async def seen() -> bool:
            return urgent in handled

        await eventually(seen, within=20, what="the urgent event")
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await queue_cleanup(platform, [queue])

    assert handled.index(urgent) < 5
