"""RabbitMQ transport (aio-pika): a topic exchange, quorum queues with an explicit delivery
limit and at-least-once dead-lettering, one delay queue per retry step, and a parking queue.

For a consumer queue ``Q``:
- ``Q``: quorum; a message redelivered more than ``delivery_limit`` times (a consumer that
  keeps crashing on it) is dead-lettered, at least once, to ``Q.parking``;
- ``Q.retry.N``: quorum with a message TTL of ``backoff(N)``; expired messages return to ``Q``;
- ``Q.parking``: where failed messages wait for an operator's replay.
A handler's failure republishes the message to the next retry step (or to parking) with
confirms, and only then acks it: a crash in between can only duplicate, which the inbox absorbs.
"""

import asyncio
import contextlib
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
)
from shared.events import Envelope

log = logging.getLogger(__name__)

ATTEMPT = "x-cordon-attempt"
ERROR = "x-cordon-error"
# The event's own routing key: dead-lettering from a retry queue replaces the message's.
ROUTING_KEY = "x-cordon-routing-key"
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
        self._publish_lock = asyncio.Lock()

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
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
                            self.exchange.publish(
                                _message(m.body, event_id=m.event_id, routing_key=m.routing_key),
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
        channel = self.channel
        await channel.declare_queue(f"{queue}.parking", durable=True, arguments=_quorum())
        for step in range(1, self.delivery_limit):
            ttl_ms = int(backoff_seconds(step, self._retry_base) * 1000)
            await channel.declare_queue(
                f"{queue}.retry.{step}",
                durable=True,
                arguments=_quorum(**{"x-message-ttl": ttl_ms}, **_dead_letter_to(queue)),
            )
        main = await channel.declare_queue(
            queue,
            durable=True,
            arguments=_quorum(
                **{"x-delivery-limit": self.delivery_limit}, **_dead_letter_to(f"{queue}.parking")
            ),
        )
        for pattern in subscription.bindings:
            await main.bind(self.exchange, routing_key=pattern)

    async def consume(self, subscription: Subscription, handler: Handler) -> None:
        if self._connection is None:
            raise RuntimeError("transport is not connected")
        connection = self._connection
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self._prefetch)
        # Declared (passively) on this robust channel, so that aio-pika restores the queue and
        # the consumer on it after the connection comes back.
        queue = await channel.declare_queue(subscription.queue, passive=True)
        try:
            while not connection.is_closed:
                async with queue.iterator() as messages:
                    async for message in messages:
                        await self._deliver(channel, subscription.queue, message, handler)
                # The iterator gives up after a long outage; wait for the broker and go on.
                log.warning("consumer of %s stopped; resuming", subscription.queue)
                await asyncio.sleep(1)
        finally:
            if not channel.is_closed:
                with contextlib.suppress(*BROKER_ERRORS):
                    await channel.close()

    async def _deliver(
        self,
        channel: AbstractChannel,
        queue: str,
        message: AbstractIncomingMessage,
        handler: Handler,
    ) -> None:
        try:
            try:
                envelope = Envelope.from_bytes(message.body)
            except ValueError as exc:
                raise PoisonMessage(f"unreadable message: {exc}") from exc
            await handler(envelope)
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
        target = f"{queue}.parking" if park else f"{queue}.retry.{attempt}"
        headers = {ATTEMPT: attempt if park else attempt + 1, ERROR: describe_error(failure)}
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
                        message.body, event_id=message.message_id or "", routing_key=routing_key
                    ),
                    routing_key=queue,
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
        async with self._scratch_channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


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
