"""RabbitMQ transport (aio-pika): a topic exchange, quorum queues with an explicit delivery
limit and at-least-once dead-lettering, one delay queue per retry step, and a parking queue.

For a consumer queue ``Q``:
- ``Q``: quorum; a message redelivered more than ``delivery_limit`` times (a consumer that
  keeps crashing on it) is dead-lettered, at least once, to ``Q.parking``;
- ``Q.retry.N``: quorum with a message TTL of ``backoff(N)``; expired messages return to ``Q``;
- ``Q.urgent`` and ``Q.urgent.retry.N``: the same for the urgent lane, bound to the urgent
  exchange (``<exchange>.urgent``) with the same patterns (see ``shared.bus.lanes``);
- ``Q.parking``: where failed messages of both lanes wait for an operator's replay.
A handler's failure republishes the message to the next retry step (or to parking) with
confirms, and only then acks it: a crash in between can only duplicate, which the inbox absorbs.
"""

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from shared.bus.lanes import KeyedDispatcher, lanes_of, urgent_lane
from shared.bus.transport import (
    Handler,
    Outgoing,
    ParkedMessage,
    PoisonMessage,
    Subscription,
    Transport,
    TransportError,
    backoff_seconds,
    describe_error,
    order_key_of,
    parse,
)
from shared.events import Envelope

log = logging.getLogger(__name__)

ATTEMPT = "x-cordon-attempt"
ERROR = "x-cordon-error"
# The event's own routing key: dead-lettering from a retry queue replaces the message's.
ROUTING_KEY = "x-cordon-routing-key"
# The lane a message travels in, so that a replay from parking sends it back to it.
LANE = "x-cordon-lane"
# What aio-pika raises when the broker refuses, or the connection or channel is gone.
BROKER_ERRORS: tuple[type[BaseException], ...] = CONNECTION_EXCEPTIONS
# In-flight confirms per publish call: the broker's confirm round trip is the cost to amortise.
PUBLISH_WINDOW = 256


def _quorum(**extra: Any) -> dict[str, Any]:
    return {"x-queue-type": "quorum", **extra}


def _dead_letter_to(queue: str) -> dict[str, Any]:
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def queue_objects(queue: str, *, delivery_limit: int) -> list[str]:
    """Every RabbitMQ queue that stands behind a consumer queue (for clean-ups)."""
    names = [f"{queue}.parking"]
    for lane in lanes_of(queue):
        names += [lane] + [f"{lane}.retry.{n}" for n in range(1, delivery_limit)]
    return names


class RabbitTransport(Transport):
    def __init__(
        self,
        *,
        url: str,
        exchange: str,
        delivery_limit: int,
        retry_base_seconds: float,
        prefetch: int = 64,
    ) -> None:
        self.delivery_limit = delivery_limit
        self._url = url
        self._exchange_name = exchange
        self._retry_base = retry_base_seconds
        self._prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._urgent_exchange: AbstractExchange | None = None
        self._publish_lock = asyncio.Lock()

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._urgent_exchange = await self._channel.declare_exchange(
            urgent_lane(self._exchange_name), aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def ping(self) -> bool:
        # A robust connection is not "closed" while it reconnects; ``connected`` says whether
        # the broker is reachable now.
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise RuntimeError("transport is not connected")
        return self._channel

    @property
    def exchange(self) -> AbstractExchange:
        if self._exchange is None:
            raise RuntimeError("transport is not connected")
        return self._exchange

    def _exchange_for(self, message: Outgoing) -> AbstractExchange:
        if not message.urgent:
            return self.exchange
        if self._urgent_exchange is None:
            raise RuntimeError("transport is not connected")
        return self._urgent_exchange

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        for start in range(0, len(messages), PUBLISH_WINDOW):
            window = messages[start : start + PUBLISH_WINDOW]
            # Every publish of the window settles before a failure is raised: none is still
            # in flight when the caller decides to publish the batch again.
            outcomes = await asyncio.gather(
                *(
                    self._exchange_for(m).publish(
                        _message(
                            m.body,
                            event_id=m.event_id,
                            routing_key=m.routing_key,
                            headers={LANE: "urgent"} if m.urgent else None,
                        ),
                        routing_key=m.routing_key,
                        mandatory=False,
                    )
                    for m in window
                ),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if isinstance(outcome, BROKER_ERRORS):
                    raise TransportError(describe_error(outcome)) from outcome
                if isinstance(outcome, BaseException):
                    raise outcome

    async def declare(self, subscription: Subscription) -> None:
        queue = subscription.queue
        channel = self.channel
        await channel.declare_queue(f"{queue}.parking", durable=True, arguments=_quorum())
        bulk, urgent = lanes_of(queue)
        for lane, exchange in ((bulk, self.exchange), (urgent, self._urgent_exchange)):
            assert exchange is not None
            declared = await self._declare_lane(lane, parking=f"{queue}.parking")
            for pattern in subscription.bindings:
                await declared.bind(exchange, routing_key=pattern)

    async def _declare_lane(self, lane: str, *, parking: str) -> AbstractQueue:
        channel = self.channel
        for step in range(1, self.delivery_limit):
            ttl_ms = int(backoff_seconds(step, self._retry_base) * 1000)
            await channel.declare_queue(
                f"{lane}.retry.{step}",
                durable=True,
                arguments=_quorum(**{"x-message-ttl": ttl_ms}, **_dead_letter_to(lane)),
            )
        return await channel.declare_queue(
            lane,
            durable=True,
            arguments=_quorum(
                **{"x-delivery-limit": self.delivery_limit}, **_dead_letter_to(parking)
            ),
        )

    async def consume(self, subscription: Subscription, handler: Handler) -> None:
        if self._connection is None:
            raise RuntimeError("transport is not connected")
        channel = await self._connection.channel(publisher_confirms=True)
        # Enough prefetched to fill every slot, and one more to take when a slot frees.
        await channel.set_qos(prefetch_count=max(self._prefetch, subscription.concurrency + 1))
        dispatcher = KeyedDispatcher(subscription.concurrency)
        arrived = asyncio.Event()
        buffers: dict[str, collections.deque[AbstractIncomingMessage]] = {}
        # The urgent lane first: its consumer starts before the bulk backlog streams in.
        for lane in reversed(lanes_of(subscription.queue)):
            buffer = buffers[lane] = collections.deque()

            async def take(message: AbstractIncomingMessage, buffer: Any = buffer) -> None:
                buffer.append(message)
                arrived.set()

            # Declared (passively) and consumed on this robust channel, so that aio-pika
            # restores the queue and the consumer on it after the connection comes back.
            # What was prefetched before an outage cannot be settled any more: the broker
            # delivers it again and the inbox absorbs the duplicate.
            queue = await channel.declare_queue(lane, passive=True)
            await queue.consume(take)
        urgent, bulk = buffers[urgent_lane(subscription.queue)], buffers[subscription.queue]
        try:
            while True:
                await dispatcher.slot()
                while not (urgent or bulk):
                    arrived.clear()
                    await arrived.wait()
                message = urgent.popleft() if urgent else bulk.popleft()
                parsed = parse(message.body)
                dispatcher.start(
                    order_key_of(subscription, parsed),
                    functools.partial(
                        self._deliver, channel, subscription.queue, message, parsed, handler
                    ),
                )
        finally:
            await dispatcher.close()
            if not channel.is_closed:
                with contextlib.suppress(*BROKER_ERRORS):
                    await channel.close()

    async def _deliver(
        self,
        channel: AbstractChannel,
        queue: str,
        message: AbstractIncomingMessage,
        parsed: Envelope | PoisonMessage,
        handler: Handler,
    ) -> None:
        try:
            if isinstance(parsed, PoisonMessage):
                raise parsed
            await handler(parsed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure: Exception | None = exc
        else:
            failure = None
        try:
            if failure is not None:
                await self._retry_or_park(channel, queue, message, failure)
            await message.ack()
        except BROKER_ERRORS as exc:
            # The channel went away with the message unacknowledged: the broker delivers it
            # again, and the consumer's inbox makes a second success harmless.
            log.warning(
                "could not settle message %s on %s, it will come again: %s",
                message.message_id,
                queue,
                describe_error(exc),
            )
            with contextlib.suppress(*BROKER_ERRORS):
                await message.nack(requeue=True)

    async def _retry_or_park(
        self,
        channel: AbstractChannel,
        queue: str,
        message: AbstractIncomingMessage,
        failure: Exception,
    ) -> None:
        attempt = int((message.headers or {}).get(ATTEMPT, 1))  # type: ignore[arg-type]
        park = isinstance(failure, PoisonMessage) or attempt >= self.delivery_limit
        log.warning(
            "message %s on %s failed on attempt %s (%s)",
            message.message_id,
            queue,
            attempt,
            "parked" if park else "will retry",
            exc_info=failure,
        )
        lane = _lane(queue, message)
        target = f"{queue}.parking" if park else f"{lane}.retry.{attempt}"
        headers = {
            ATTEMPT: attempt if park else attempt + 1,
            ERROR: describe_error(failure),
            LANE: (message.headers or {}).get(LANE, ""),
        }
        await channel.default_exchange.publish(
            _message(
                message.body,
                event_id=message.message_id or "",
                routing_key=_routing_key(message),
                headers=headers,
            ),
            routing_key=target,
        )

    async def parked(self, queue: str, *, limit: int = 100) -> list[ParkedMessage]:
        async with self._parking(queue) as parking:
            taken = await _take(parking, limit)
            listed = [_parked(queue, m) for m in taken]
            for message in taken:
                await message.nack(requeue=True)
        return listed

    async def replay(self, queue: str, *, event_ids: Collection[str] | None = None) -> int:
        replayed = 0
        async with self._parking(queue) as parking:
            for message in await _take(parking, limit=1_000_000):
                if event_ids is not None and message.message_id not in event_ids:
                    await message.nack(requeue=True)
                    continue
                routing_key = _routing_key(message)
                await self.channel.default_exchange.publish(
                    _message(
                        message.body,
                        event_id=message.message_id or "",
                        routing_key=routing_key,
                        headers={LANE: (message.headers or {}).get(LANE, "")},
                    ),
                    routing_key=_lane(queue, message),
                )
                await message.ack()
                replayed += 1
        return replayed

    @contextlib.asynccontextmanager
    async def _scratch_channel(self) -> AsyncIterator[AbstractChannel]:
        if self._connection is None:
            raise RuntimeError("transport is not connected")
        channel = await self._connection.channel()
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    @contextlib.asynccontextmanager
    async def _parking(self, queue: str) -> AsyncIterator[AbstractQueue]:
        async with self._scratch_channel() as channel:
            yield await channel.get_queue(f"{queue}.parking", ensure=False)

    async def depth(self, queue: str) -> int:
        # A fresh channel: a robust channel answers a passive declare of a queue it declared
        # itself from its cache, with the count of the day it was declared.
        total = 0
        async with self._scratch_channel() as channel:
            for lane in lanes_of(queue):
                declared = await channel.declare_queue(lane, passive=True)
                total += int(declared.declaration_result.message_count or 0)
        return total


def _message(
    body: bytes, *, event_id: str, routing_key: str, headers: dict[str, Any] | None = None
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        message_id=event_id,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={ROUTING_KEY: routing_key, **(headers or {})},
    )


async def _take(queue: AbstractQueue, limit: int) -> list[AbstractIncomingMessage]:
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    return taken


def _lane(queue: str, message: AbstractIncomingMessage) -> str:
    """The lane of ``queue`` the message travels in."""
    urgent = (message.headers or {}).get(LANE) == "urgent"
    return urgent_lane(queue) if urgent else queue


def _routing_key(message: AbstractIncomingMessage) -> str:
    return str((message.headers or {}).get(ROUTING_KEY, message.routing_key or ""))


def _parked(queue: str, message: AbstractIncomingMessage) -> ParkedMessage:
    headers = message.headers or {}
    return ParkedMessage(
        queue=queue,
        event_id=message.message_id or "",
        routing_key=_routing_key(message),
        attempts=int(headers.get(ATTEMPT, 0)),  # type: ignore[arg-type]
        error=str(headers.get(ERROR, "delivery limit reached")),
        body=message.body,
    )
