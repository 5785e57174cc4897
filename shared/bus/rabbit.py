"""RabbitMQ transport (aio-pika): a topic exchange, quorum queues with at-least-once
dead-lettering, one delay queue per retry step, a parking queue, and an alternate exchange
that keeps events no queue is bound for.

Queue arguments are fixed when a queue is first declared, and RabbitMQ refuses a declaration
with other ones (PRECONDITION_FAILED). So the arguments hold only what never changes, and what
operators tune travels with the messages: the number of tries (``CORDON_DELIVERY_LIMIT``) is a
header counted by the consumer, the retry delay a per-message expiration.

For a consumer queue ``Q``:
- ``Q``: quorum; a message redelivered more than ``REDELIVERY_LIMIT`` times without being
  settled (a consumer process that keeps dying on it) is dead-lettered, at least once, to
  ``Q.parking``. A handler's failures are counted apart, in the ``x-cordon-attempt`` header;
- ``Q.backoff.N``: quorum; a message waits there for its own expiration (``backoff(N)``),
  then returns to ``Q``. (Versions before kept the delay in the argument of ``Q.retry.N``
  queues; those drain into ``Q`` all the same and can be deleted once empty.)
- ``Q.urgent`` and ``Q.urgent.backoff.N``: the same for the urgent lane, bound to the urgent
  exchange (``<exchange>.urgent``) with the same patterns (see ``shared.bus.lanes``);
- ``Q.parking``: classic, so that an operator's listing (get, then requeue) counts toward no
  delivery limit; failed messages of both lanes wait there for a replay.
For the exchange ``E`` (and ``E.urgent``): ``E.unrouted`` (a fanout exchange, the alternate
exchange of both, and a classic queue of the same name) keeps every event that matched no
binding, listed and replayed like a parking queue (``UNROUTED``).
A handler's failure republishes the message to the next retry step (or to parking) with
confirms, and only then acks it: a crash in between can only duplicate, which the inbox absorbs.
A queue declared earlier with other arguments is left as it is, with a warning: what differs
there is never a tuned value.
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
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelPreconditionFailed

from shared.bus.lanes import KeyedDispatcher, lanes_of, urgent_lane
from shared.bus.transport import (
    REPLAY_BATCH,
    UNROUTED,
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
# Deliveries of one message left unsettled (the consumer's connection or process died holding
# it) before the broker parks it: a message that crashes the process is not tried for ever.
# Fixed, since it is a queue argument; it is not the handler's budget of tries.
REDELIVERY_LIMIT = 20


def _quorum(**extra: Any) -> dict[str, Any]:
    return {"x-queue-type": "quorum", **extra}


def _classic() -> dict[str, Any]:
    return {"x-queue-type": "classic"}


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
        names += [lane] + [backoff_queue(lane, n) for n in range(1, delivery_limit)]
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
        publish_timeout_seconds: float = 30.0,
    ) -> None:
        self.delivery_limit = delivery_limit
        self._url = url
        self._exchange_name = exchange
        self._retry_base = retry_base_seconds
        self._prefetch = prefetch
        self._publish_timeout = publish_timeout_seconds
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._urgent_exchange: AbstractExchange | None = None
        self._publish_lock = asyncio.Lock()

    @property
    def unrouted_queue(self) -> str:
        return f"{self._exchange_name}.unrouted"

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._declare_exchanges()
        self._exchange = await self._channel.get_exchange(self._exchange_name, ensure=False)
        self._urgent_exchange = await self._channel.get_exchange(
            urgent_lane(self._exchange_name), ensure=False
        )

    async def _declare_exchanges(self) -> None:
        unrouted = self.unrouted_queue
        async with self._scratch_channel() as channel:
            fallback = await channel.declare_exchange(
                unrouted, aio_pika.ExchangeType.FANOUT, durable=True
            )
            queue = await channel.declare_queue(unrouted, durable=True, arguments=_classic())
            await queue.bind(fallback)
        for name in (self._exchange_name, urgent_lane(self._exchange_name)):
            try:
                async with self._scratch_channel() as channel:
                    await channel.declare_exchange(
                        name,
                        aio_pika.ExchangeType.TOPIC,
                        durable=True,
                        arguments={"alternate-exchange": unrouted},
                    )
            except ChannelPreconditionFailed:
                log.warning(
                    "exchange %s was declared without the alternate exchange %s: events no "
                    "queue is bound for are dropped there until it is recreated",
                    name,
                    unrouted,
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
            # in flight when the caller decides to publish the batch again. A broker that
            # never confirms (blocked by an alarm, a half-open connection) fails the window
            # after the timeout instead of holding the relay for ever.
            try:
                async with asyncio.timeout(self._publish_timeout):
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
            except TimeoutError as exc:
                raise TransportError(
                    f"publishes not confirmed within {self._publish_timeout:g}s"
                ) from exc
            for outcome in outcomes:
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if isinstance(outcome, BROKER_ERRORS):
                    raise TransportError(describe_error(outcome)) from outcome
                if isinstance(outcome, BaseException):
                    raise outcome

    async def declare(self, subscription: Subscription) -> None:
        queue = subscription.queue
        await self._ensure_queue(f"{queue}.parking", _classic())
        bulk, urgent = lanes_of(queue)
        for lane, exchange in (
            (bulk, self._exchange_name),
            (urgent, urgent_lane(self._exchange_name)),
        ):
            for step in range(1, self.delivery_limit):
                await self._ensure_queue(
                    backoff_queue(lane, step), _quorum(**_dead_letter_to(lane))
                )
            await self._ensure_queue(
                lane,
                _quorum(
                    **{"x-delivery-limit": REDELIVERY_LIMIT}, **_dead_letter_to(f"{queue}.parking")
                ),
            )
            async with self._scratch_channel() as channel:
                declared = await channel.get_queue(lane, ensure=False)
                for pattern in subscription.bindings:
                    await declared.bind(exchange, routing_key=pattern)

    async def _ensure_queue(self, name: str, arguments: dict[str, Any]) -> None:
        """Declare ``name`` with ``arguments``; one that exists with other arguments (declared
        by an older version) is left as it is, with a warning."""
        try:
            async with self._scratch_channel() as channel:
                await channel.declare_queue(name, durable=True, arguments=arguments)
        except ChannelPreconditionFailed as exc:
            log.warning(
                "queue %s keeps the arguments it was declared with: %s", name, describe_error(exc)
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
        target = f"{queue}.parking" if park else backoff_queue(lane, attempt)
        headers = {
            ATTEMPT: attempt if park else attempt + 1,
            ERROR: describe_error(failure),
            LANE: (message.headers or {}).get(LANE, ""),
        }
        retry = _message(
            message.body,
            event_id=message.message_id or "",
            routing_key=_routing_key(message),
            headers=headers,
        )
        if not park:
            # The delay rides on the message, so a changed retry base applies at once.
            retry.expiration = backoff_seconds(attempt, self._retry_base)
        async with asyncio.timeout(self._publish_timeout):
            await channel.default_exchange.publish(retry, routing_key=target)

    def _parking_of(self, queue: str) -> str:
        return self.unrouted_queue if queue == UNROUTED else f"{queue}.parking"

    async def parked(self, queue: str, *, limit: int = 100) -> list[ParkedMessage]:
        # Read-only: the messages are got and requeued in their place (a classic queue counts
        # no deliveries, so listing never brings one nearer to a delivery limit).
        async with self._scratch_channel() as channel:
            parking = await channel.get_queue(self._parking_of(queue), ensure=False)
            taken = await _take(parking, limit)
            if taken:
                await taken[-1].nack(multiple=True, requeue=True)
        return [_parked(queue, m) for m in taken]

    async def replay(
        self, queue: str, *, event_ids: Collection[str] | None = None, limit: int | None = None
    ) -> int:
        source = self._parking_of(queue)
        replayed = 0
        async with self._scratch_channel(confirms=True) as channel:
            parking = await channel.declare_queue(source, passive=True)
            # Each message present at the start is looked at once: those kept go to the tail.
            unseen = int(parking.declaration_result.message_count or 0)
            while unseen > 0 and (limit is None or replayed < limit):
                size = min(REPLAY_BATCH, unseen)
                if limit is not None and event_ids is None:
                    size = min(size, limit - replayed)  # take no more than will be sent
                batch = await _take(parking, size)
                if not batch:
                    break
                unseen -= len(batch)
                sends = []
                for message in batch:
                    wanted = event_ids is None or message.message_id in event_ids
                    if wanted and (limit is None or replayed < limit):
                        replayed += 1
                        sends.append(self._send_back(channel, queue, message))
                    else:
                        sends.append(_keep(channel, source, message))
                # Confirmed before the batch is acked: a crash between doubles, never loses.
                async with asyncio.timeout(self._publish_timeout):
                    await asyncio.gather(*sends)
                await batch[-1].ack(multiple=True)
        return replayed

    async def _send_back(
        self, channel: AbstractChannel, queue: str, message: AbstractIncomingMessage
    ) -> None:
        routing_key = _routing_key(message)
        lane = (message.headers or {}).get(LANE, "")
        fresh = _message(
            message.body,
            event_id=message.message_id or "",
            routing_key=routing_key,
            headers={LANE: lane},
        )
        if queue == UNROUTED:
            # Routed again by the exchange: to the queues bound since, or back to unrouted.
            exchange = await channel.get_exchange(self._exchange_name, ensure=False)
            await exchange.publish(fresh, routing_key=routing_key)
        else:
            await channel.default_exchange.publish(fresh, routing_key=_lane(queue, message))

    @contextlib.asynccontextmanager
    async def _scratch_channel(self, *, confirms: bool = False) -> AsyncIterator[AbstractChannel]:
        if self._connection is None:
            raise RuntimeError("transport is not connected")
        channel = await self._connection.channel(publisher_confirms=confirms)
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    async def depth(self, queue: str) -> int:
        # A fresh channel: a robust channel answers a passive declare of a queue it declared
        # itself from its cache, with the count of the day it was declared.
        if queue == UNROUTED:
            names: tuple[str, ...] = (self.unrouted_queue,)
        else:
            names = lanes_of(queue)
        total = 0
        async with self._scratch_channel() as channel:
            for name in names:
                declared = await channel.declare_queue(name, passive=True)
                total += int(declared.declaration_result.message_count or 0)
        return total


def backoff_queue(queue: str, step: int) -> str:
    return f"{queue}.backoff.{step}"


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


async def _keep(channel: AbstractChannel, queue: str, message: AbstractIncomingMessage) -> None:
    """Put a message back at the tail of its parking queue as it was (headers and all)."""
    kept = aio_pika.Message(
        message.body,
        message_id=message.message_id,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=dict(message.headers or {}),
    )
    await channel.default_exchange.publish(kept, routing_key=queue)


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
