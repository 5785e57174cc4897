"""One contract for both transports: RabbitMQ (distributed mode) and the durable SQLite queues
of the embedded mode keep the same routing, durability, retry, parking and replay rules."""

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.bus.local import LocalTransport
from shared.bus.rabbit import RabbitTransport
from shared.bus.transport import (
    UNROUTED,
    Handler,
    Outgoing,
    PoisonMessage,
    Subscription,
    Transport,
)
from shared.events import Envelope
from tests.conftest import AMQP_URL, delete_bus_objects, skip_unless_reachable
from tests.support import eventually

DELIVERY_LIMIT = 3
RETRY_BASE = 0.1


@dataclass
class Bus:
    """A transport under test, and how to open another one on the same broker or file."""

    kind: str
    open: Callable[[], Transport]
    transport: Transport
    queues: list[str] = field(default_factory=list)
    consumers: list[asyncio.Task[None]] = field(default_factory=list)

    async def queue(self, *bindings: str) -> Subscription:
        subscription = Subscription(f"contract_{uuid.uuid4().hex[:12]}", bindings)
        self.queues.append(subscription.queue)
        await self.transport.declare(subscription)
        return subscription

    def consume(self, subscription: Subscription, handler: Handler) -> None:
        self.consumers.append(asyncio.create_task(self.transport.consume(subscription, handler)))

    async def stop_consumers(self) -> None:
        for task in self.consumers:
            task.cancel()
        await asyncio.gather(*self.consumers, return_exceptions=True)
        self.consumers.clear()


@pytest.fixture(params=["local", "rabbitmq"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    exchange = f"contract_{uuid.uuid4().hex[:12]}"

    def open_transport() -> Transport:
        if request.param == "local":
            return LocalTransport(
                url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}",
                delivery_limit=DELIVERY_LIMIT,
                retry_base_seconds=RETRY_BASE,
                poll_seconds=0.05,
            )
        return RabbitTransport(
            url=AMQP_URL,
            exchange=exchange,
            delivery_limit=DELIVERY_LIMIT,
            retry_base_seconds=RETRY_BASE,
        )

    if request.param == "rabbitmq":
        skip_unless_reachable("RabbitMQ")
    bus = Bus(request.param, open_transport, open_transport())
    await bus.transport.connect()
    try:
        yield bus
    finally:
        await bus.stop_consumers()
        await bus.transport.close()
        if request.param == "rabbitmq":
            await delete_bus_objects(
                AMQP_URL, queues=bus.queues, delivery_limit=DELIVERY_LIMIT, exchange=exchange
            )


def message(routing_key: str, **payload: object) -> Outgoing:
    envelope = Envelope(
        type=routing_key, version=1, producer="test", correlation_id="c-1", payload=payload
    )
    return Outgoing(str(envelope.id), routing_key, envelope.to_bytes())


def collector() -> tuple[list[Envelope], Handler]:
    received: list[Envelope] = []

    async def handle(envelope: Envelope) -> None:
        received.append(envelope)

    return received, handle


async def settle() -> None:
    """Give a wrongly routed or redelivered message the time to show up."""
    await asyncio.sleep(0.3)


def has(received: list[object], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(received) >= count

    return check


async def test_topic_routing_star_is_one_word_hash_is_any_words(bus: Bus) -> None:
    star = await bus.queue("zone.*.changed")
    hashed = await bus.queue("registry.#")
    keys = [
        "zone.building.changed",
        "zone.building.unit.changed",
        "registry",
        "registry.resident.registered",
        "registry.residents.imported.batch",
        "testing.case.confirmed",
    ]
    await bus.transport.publish([message(k) for k in keys])

    got_star, on_star = collector()
    got_hash, on_hash = collector()
    bus.consume(star, on_star)
    bus.consume(hashed, on_hash)
    await eventually(has(got_hash, 3), what="the registry.# messages")
    await eventually(has(got_star, 1), what="the zone.*.changed message")
    await settle()

    assert [e.type for e in got_star] == ["zone.building.changed"]
    assert sorted(e.type for e in got_hash) == [
        "registry",
        "registry.resident.registered",
        "registry.residents.imported.batch",
    ]
    assert await bus.transport.depth(star.queue) == 0
    assert await bus.transport.depth(hashed.queue) == 0


async def test_messages_published_before_a_consumer_starts_survive_a_restart(bus: Bus) -> None:
    subscription = await bus.queue("registry.resident.*")
    sent = [message("registry.resident.registered", n=n) for n in range(5)]
    await bus.transport.publish(sent)
    await bus.transport.close()

    bus.transport = bus.open()
    await bus.transport.connect()
    assert await bus.transport.depth(subscription.queue) == 5
    received, handle = collector()
    bus.consume(subscription, handle)
    await eventually(has(received, 5), what="the messages published before the restart")
    await settle()

    assert sorted(e.payload["n"] for e in received) == [0, 1, 2, 3, 4]
    assert {str(e.id) for e in received} == {m.event_id for m in sent}


async def test_a_failing_handler_is_retried_with_growing_delays_then_parked(bus: Bus) -> None:
    subscription = await bus.queue("testing.case.*")
    attempts: list[float] = []

    async def failing(envelope: Envelope) -> None:
        attempts.append(time.monotonic())
        raise RuntimeError(f"lab system down (try {len(attempts)})")

    sent = message("testing.case.confirmed", case="C-1")
    await bus.transport.publish([sent])
    bus.consume(subscription, failing)

    async def parked() -> bool:
        return len(await bus.transport.parked(subscription.queue)) == 1

    await eventually(parked, what="the message to be parked")
    await settle()

    assert len(attempts) == DELIVERY_LIMIT
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= RETRY_BASE * 0.9
    assert gaps[1] >= RETRY_BASE * 4 * 0.9
    assert gaps[1] > gaps[0]
    [held] = await bus.transport.parked(subscription.queue)
    assert held.event_id == sent.event_id
    assert held.routing_key == "testing.case.confirmed"
    assert held.attempts == DELIVERY_LIMIT
    assert held.error == f"RuntimeError: lab system down (try {DELIVERY_LIMIT})"
    assert Envelope.from_bytes(held.body).payload == {"case": "C-1"}
    assert await bus.transport.depth(subscription.queue) == 0


async def test_a_poison_message_is_parked_at_once(bus: Bus) -> None:
    subscription = await bus.queue("registry.#")
    calls: list[str] = []

    async def refuse(envelope: Envelope) -> None:
        calls.append(envelope.type)
        raise PoisonMessage("payload names no resident")

    poisoned = message("registry.resident.registered")
    unreadable = Outgoing(str(uuid.uuid4()), "registry.resident.updated", b"not an envelope")
    await bus.transport.publish([poisoned, unreadable])
    bus.consume(subscription, refuse)

    async def both_parked() -> bool:
        return len(await bus.transport.parked(subscription.queue)) == 2

    await eventually(both_parked, what="both messages to be parked")
    await settle()

    assert calls == ["registry.resident.registered"]
    held = {m.event_id: m for m in await bus.transport.parked(subscription.queue)}
    assert held[poisoned.event_id].attempts == 1
    assert held[poisoned.event_id].error == "PoisonMessage: payload names no resident"
    assert held[unreadable.event_id].attempts == 1
    assert held[unreadable.event_id].error.startswith("PoisonMessage: unreadable message")
    assert held[unreadable.event_id].routing_key == "registry.resident.updated"


async def park(
    bus: Bus, count: int = 3
) -> tuple[Subscription, list[Outgoing], list[Envelope], list[bool]]:
    """``count`` messages parked by a handler that fails while ``failing[0]`` holds."""
    subscription = await bus.queue("logistics.request.*")
    failing = [True]
    handled: list[Envelope] = []

    async def handle(envelope: Envelope) -> None:
        if failing[0]:
            raise PoisonMessage("no such household yet")
        handled.append(envelope)

    sent = [message("logistics.request.created", n=n) for n in range(count)]
    await bus.transport.publish(sent)
    bus.consume(subscription, handle)

    async def all_parked() -> bool:
        return len(await bus.transport.parked(subscription.queue)) == count

    await eventually(all_parked, what=f"{count} parked messages")
    return subscription, sent, handled, failing


async def test_listing_parked_messages_leaves_them_parked(bus: Bus) -> None:
    subscription, sent, handled, _ = await park(bus)

    first = await bus.transport.parked(subscription.queue)
    again = await bus.transport.parked(subscription.queue)
    limited = await bus.transport.parked(subscription.queue, limit=2)

    assert sorted(m.event_id for m in first) == sorted(m.event_id for m in sent)
    assert sorted(m.event_id for m in again) == sorted(m.event_id for m in sent)
    assert len(limited) == 2
    assert await bus.transport.depth(subscription.queue) == 0
    await settle()
    assert handled == []
    assert len(await bus.transport.parked(subscription.queue)) == 3


async def test_replay_by_event_id_then_all_sends_back_and_the_handler_succeeds(bus: Bus) -> None:
    subscription, sent, handled, failing = await park(bus)
    failing[0] = False

    assert await bus.transport.replay(subscription.queue, event_ids=[sent[1].event_id]) == 1
    await eventually(has(handled, 1), what="the replayed message")
    assert [str(e.id) for e in handled] == [sent[1].event_id]
    still = await bus.transport.parked(subscription.queue)
    assert sorted(m.event_id for m in still) == sorted([sent[0].event_id, sent[2].event_id])

    assert await bus.transport.replay(subscription.queue) == 2
    await eventually(has(handled, 3), what="every replayed message")
    await settle()
    assert sorted(str(e.id) for e in handled) == sorted(m.event_id for m in sent)
    assert await bus.transport.parked(subscription.queue) == []
    assert await bus.transport.replay(subscription.queue) == 0


async def test_depth_counts_waiting_messages_not_parked_ones(bus: Bus) -> None:
    waiting = await bus.queue("notify.message.*")
    assert await bus.transport.depth(waiting.queue) == 0
    await bus.transport.publish([message("notify.message.failed", n=n) for n in range(4)])
    assert await bus.transport.depth(waiting.queue) == 4

    async def park(envelope: Envelope) -> None:
        raise PoisonMessage("no template")

    bus.consume(waiting, park)

    async def all_parked() -> bool:
        return len(await bus.transport.parked(waiting.queue)) == 4

    await eventually(all_parked, what="four parked messages")
    assert await bus.transport.depth(waiting.queue) == 0


async def test_ping_answers_while_connected_and_not_after_close(bus: Bus) -> None:
    assert await bus.transport.ping() is True
    await bus.transport.close()
    assert await bus.transport.ping() is False
    bus.transport = bus.open()
    await bus.transport.connect()
    assert await bus.transport.ping() is True


async def broker_delivery_count(bus: Bus, queue: str) -> int:
    """RabbitMQ's own count of deliveries of the parked message at the head of ``queue``'s
    parking (the count a delivery limit drops messages by), looked at once more."""
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        parking = await channel.get_queue(f"{queue}.parking", ensure=False)
        head = await parking.get(no_ack=False)
        count = int((head.headers or {}).get("x-delivery-count", 0))  # type: ignore[arg-type]
        await head.nack(requeue=True)
        return count
    finally:
        await connection.close()


async def test_listing_more_often_than_any_delivery_limit_keeps_every_message_and_its_count(
    bus: Bus,
) -> None:
    subscription, sent, _, _ = await park(bus)
    # RabbitMQ 4's quorum queues drop a message requeued 20 times (their default limit).
    for _ in range(25):
        listed = await bus.transport.parked(subscription.queue)
    assert sorted(m.event_id for m in listed) == sorted(m.event_id for m in sent)
    assert {m.attempts for m in listed} == {1}
    assert {m.error for m in listed} == {"PoisonMessage: no such household yet"}
    if bus.kind == "rabbitmq":
        assert await broker_delivery_count(bus, subscription.queue) == 0


async def test_replay_stops_at_its_limit_and_keeps_the_order_of_what_is_left(bus: Bus) -> None:
    subscription, sent, handled, failing = await park(bus, 7)
    failing[0] = False

    assert await bus.transport.replay(subscription.queue, limit=3) == 3
    await eventually(has(handled, 3), what="three replayed messages")
    left = await bus.transport.parked(subscription.queue)
    assert [m.event_id for m in left] == [m.event_id for m in sent[3:]]
    # Named ones beyond the first batch of a filtered replay: the others stay parked.
    named = [left[1].event_id, left[3].event_id]
    assert await bus.transport.replay(subscription.queue, event_ids=named, limit=5) == 2
    await eventually(has(handled, 5), what="the two named messages")
    rest = await bus.transport.parked(subscription.queue)
    assert [m.event_id for m in rest] == [left[0].event_id, left[2].event_id]
    assert {m.attempts for m in rest} == {1}
    await settle()
    assert sorted(str(e.id) for e in handled) == sorted(
        m.event_id for m in sent if m.event_id not in {r.event_id for r in rest}
    )


async def test_an_event_no_queue_is_bound_for_is_kept_and_replayed_once_one_is(bus: Bus) -> None:
    early = message("logistics.request.created", n=1)
    nobody = message("notify.broadcast.sent", n=2)
    await bus.transport.publish([early, nobody])

    kept = await bus.transport.parked(UNROUTED)
    assert sorted(m.event_id for m in kept) == sorted([early.event_id, nobody.event_id])
    assert {m.routing_key for m in kept} == {"logistics.request.created", "notify.broadcast.sent"}
    assert await bus.transport.depth(UNROUTED) == 2

    subscription = await bus.queue("logistics.request.*")
    received, handle = collector()
    bus.consume(subscription, handle)
    # Both are sent through the routing again; the one still matching nothing comes back.
    assert await bus.transport.replay(UNROUTED) == 2
    await eventually(has(received, 1), what="the kept event in its queue")
    await settle()
    assert [str(e.id) for e in received] == [early.event_id]
    [still] = await bus.transport.parked(UNROUTED)
    assert still.event_id == nobody.event_id


def keyed(routing_key: str, key: uuid.UUID, n: int) -> Outgoing:
    envelope = Envelope(
        type=routing_key,
        version=1,
        producer="test",
        correlation_id="c-1",
        compound_id=key,
        payload={"n": n},
    )
    return Outgoing(str(envelope.id), routing_key, envelope.to_bytes())


async def test_concurrent_consumer_keeps_each_compounds_order_and_handles_compounds_at_once(
    bus: Bus,
) -> None:
    keys, per_key, pause = 8, 6, 0.03
    compounds = [uuid.uuid4() for _ in range(keys)]
    sent = [keyed("registry.zone.changed", c, n) for n in range(per_key) for c in compounds]
    concurrent = Subscription(f"contract_{uuid.uuid4().hex[:12]}", ("registry.zone.*",), 8)
    bus.queues.append(concurrent.queue)
    await bus.transport.declare(concurrent)
    await bus.transport.publish(sent)
    seen: dict[uuid.UUID | None, list[int]] = {c: [] for c in compounds}
    busy: set[uuid.UUID | None] = set()
    overlaps: list[uuid.UUID | None] = []
    most_at_once = 0
    rng = random.Random(8)

    async def slow(envelope: Envelope) -> None:
        nonlocal most_at_once
        if envelope.compound_id in busy:
            overlaps.append(envelope.compound_id)
        busy.add(envelope.compound_id)
        most_at_once = max(most_at_once, len(busy))
        await asyncio.sleep(rng.uniform(0, 2 * pause))
        busy.discard(envelope.compound_id)
        seen[envelope.compound_id].append(int(envelope.payload["n"]))

    bus.consume(concurrent, slow)

    async def all_seen() -> bool:
        return sum(len(v) for v in seen.values()) >= len(sent)

    await eventually(all_seen, within=30, what="every message")

    assert overlaps == []
    assert all(order == list(range(per_key)) for order in seen.values()), seen
    # Several compounds in hand at once (one at a time would never hold two), observed
    # rather than timed: a busy machine slows both alike.
    assert most_at_once >= 2


async def test_an_urgent_message_overtakes_a_bulk_backlog(bus: Bus) -> None:
    subscription = await bus.queue("notify.message.*")
    backlog = [message("notify.message.requested", n=n) for n in range(1000)]
    await bus.transport.publish(backlog)
    urgent = message("notify.message.requested", n="sealed")
    await bus.transport.publish([Outgoing(urgent.event_id, urgent.routing_key, urgent.body, True)])
    assert await bus.transport.depth(subscription.queue) == 1001
    handled: list[object] = []

    async def handle(envelope: Envelope) -> None:
        handled.append(envelope.payload["n"])
        await asyncio.sleep(0.002)

    bus.consume(subscription, handle)
    await eventually(lambda: _contains(handled, "sealed"), within=20, what="the urgent one")

    assert handled.index("sealed") < 5


async def _contains(items: list[object], item: object) -> bool:
    return item in items


async def test_urgent_messages_are_retried_parked_and_replayed_in_their_lane(bus: Bus) -> None:
    subscription = await bus.queue("testing.case.*")
    failing = [True]
    handled: list[Envelope] = []

    async def handle(envelope: Envelope) -> None:
        if failing[0]:
            raise RuntimeError("gateway down")
        handled.append(envelope)

    sent = message("testing.case.confirmed", case="C-9")
    await bus.transport.publish([Outgoing(sent.event_id, sent.routing_key, sent.body, True)])
    bus.consume(subscription, handle)

    async def parked() -> bool:
        return len(await bus.transport.parked(subscription.queue)) == 1

    await eventually(parked, what="the urgent message to be parked after its retries")
    [held] = await bus.transport.parked(subscription.queue)
    assert (held.queue, held.attempts) == (subscription.queue, DELIVERY_LIMIT)

    await bus.stop_consumers()
    backlog = [message("testing.case.confirmed", n=n) for n in range(300)]
    await bus.transport.publish(backlog)
    assert await bus.transport.replay(subscription.queue) == 1
    failing[0] = False
    bus.consume(subscription, handle)
    await eventually(has(handled, 1), what="the replayed message")
    assert str(handled[0].id) == sent.event_id
