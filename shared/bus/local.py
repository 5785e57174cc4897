"""The embedded mode's transport: durable queues in a SQLite file (or any SQL database), so a
restart loses nothing, with the same retry, parking and replay rules as RabbitMQ."""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    update,
)

from shared.bus.lanes import KeyedDispatcher, lanes_of, queue_of_lane, urgent_lane
from shared.bus.transport import (
    REPLAY_BATCH,
    UNROUTED,
    Handler,
    Outgoing,
    ParkedMessage,
    PoisonMessage,
    Subscription,
    Transport,
    backoff_seconds,
    describe_error,
    order_key_of,
    parse,
    topic_matches,
)
from shared.db import Database, SequenceInt, insert_ignoring_duplicates, new_metadata
from shared.events import Envelope

log = logging.getLogger(__name__)

metadata = new_metadata()
bindings = Table(
    "bus_bindings",
    metadata,
    Column("queue", String(200), primary_key=True),
    Column("pattern", String(200), primary_key=True),
)
messages = Table(
    "bus_messages",
    metadata,
    Column("id", SequenceInt, primary_key=True, autoincrement=True),
    Column("queue", String(200), nullable=False, index=True),
    Column("event_id", String(40), nullable=False),
    Column("routing_key", String(200), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("available_at", Float, nullable=False),
    Column("parked", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=False, default=""),
)


# Built once: polled many times a second, a statement built per call would be traversed
# anew by the scope check and SQLAlchemy's cache key each time (see shared/bus/outbox.Relay).
_READY = (
    select(messages.c.id, messages.c.body, messages.c.attempt)
    .where(
        messages.c.queue == bindparam("lane"),
        messages.c.parked.is_(False),
        messages.c.available_at <= bindparam("now"),
        messages.c.id.notin_(bindparam("exclude", expanding=True)),
    )
    .order_by(messages.c.id)
    .limit(bindparam("limit"))
)
_SETTLED = delete(messages).where(messages.c.id == bindparam("message_id"))


class LocalTransport(Transport):
    def __init__(
        self,
        *,
        url: str,
        delivery_limit: int,
        retry_base_seconds: float,
        poll_seconds: float = 0.5,
        batch: int = 100,
    ) -> None:
        self.delivery_limit = delivery_limit
        self._retry_base = retry_base_seconds
        self._poll = poll_seconds
        self._batch = batch
        self._database = Database(url=url, schema="bus", pool_size=2)
        # Settling a handled message (its delete, a retry's or parking's update) need not
        # survive a power cut: lost, the message comes again and the inbox absorbs it. So it
        # skips the sync of every commit; what is published still syncs (``_database``), and
        # that sync makes the earlier settlements in the log durable with it.
        self._settling = Database(url=url, schema="bus", pool_size=2, synchronous="NORMAL")
        self._wakeups: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._connected = False

    @property
    def database(self) -> Database:
        return self._database

    async def connect(self) -> None:
        async with self._database.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        self._connected = True

    async def close(self) -> None:
        self._connected = False
        await self._database.dispose()
        await self._settling.dispose()

    async def ping(self) -> bool:
        if not self._connected:
            return False
        try:
            async with self._database.engine.connect() as connection:
                await connection.execute(select(1))
            return True
        except Exception:
            log.exception("bus database unreachable")
            return False

    async def declare(self, subscription: Subscription) -> None:
        rows = [{"queue": subscription.queue, "pattern": p} for p in subscription.bindings]
        async with self._database.session() as session, session.begin():
            await session.execute(
                insert_ignoring_duplicates(bindings, self._database.dialect), rows
            )

    async def publish(self, batch: Sequence[Outgoing]) -> None:
        if not batch:
            return
        now = time.time()
        async with self._database.session() as session, session.begin():
            routes = (await session.execute(select(bindings.c.queue, bindings.c.pattern))).all()
            rows = [
                _row(message, queue=_lane_for(queue, message), now=now)
                for message in batch
                for queue in _queues_for(routes, message.routing_key) or {UNROUTED}
            ]
            if rows:
                await session.execute(messages.insert(), rows)
        for lane in {str(row["queue"]) for row in rows}:
            self._wakeups[queue_of_lane(lane)].set()

    async def _route_unrouted(
        self, *, event_ids: Collection[str] | None, limit: int, after: int
    ) -> tuple[int, int | None]:
        """Route up to ``limit`` kept events after row ``after`` again, by the bindings of now
        (those still unmatched stay, as on RabbitMQ they come back); return how many were
        routed again, and the last row looked at."""
        condition = (messages.c.queue == UNROUTED) & (messages.c.id > after)
        if event_ids is not None:
            condition &= messages.c.event_id.in_(list(event_ids))
        async with self._database.session() as session, session.begin():
            routes = (await session.execute(select(bindings.c.queue, bindings.c.pattern))).all()
            kept = (
                await session.execute(
                    select(messages).where(condition).order_by(messages.c.id).limit(limit)
                )
            ).all()
            now, routed, rows = time.time(), [], []
            for row in kept:
                queues = _queues_for(routes, row.routing_key)
                if queues:
                    routed.append(row.id)
                    outgoing = Outgoing(row.event_id, row.routing_key, row.body)
                    rows += [_row(outgoing, queue=q, now=now) for q in queues]
            if rows:
                await session.execute(messages.insert(), rows)
                await session.execute(delete(messages).where(messages.c.id.in_(routed)))
        for queue in {str(row["queue"]) for row in rows}:
            self._wakeups[queue].set()
        return len(kept), (kept[-1].id if kept else None)

    async def consume(self, subscription: Subscription, handler: Handler) -> None:
        lanes = lanes_of(subscription.queue)
        wakeup = self._wakeups[subscription.queue]
        dispatcher = KeyedDispatcher(subscription.concurrency)
        # Rows started and not yet settled: the next query must not take them again.
        started: set[int] = set()

        def delivery(
            message_id: int, parsed: Envelope | PoisonMessage, attempt: int
        ) -> Callable[[], Awaitable[None]]:
            async def deliver() -> None:
                try:
                    await self._deliver(message_id, parsed, attempt, handler)
                finally:
                    started.discard(message_id)

            return deliver

        try:
            while True:
                await dispatcher.slot()
                wakeup.clear()
                ready = await self._ready(lanes, exclude=started, limit=1 + dispatcher.spare)
                if not ready:
                    dispatcher.release()
                    # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that
                    # lands as the wait ends, and the consumer then never stops.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll):
                            await wakeup.wait()
                    continue
                for position, (message_id, body, attempt) in enumerate(ready):
                    if position > 0:
                        await dispatcher.slot()
                    started.add(message_id)
                    parsed = parse(body)
                    key = order_key_of(subscription, parsed)
                    dispatcher.start(key, delivery(message_id, parsed, attempt))
        finally:
            await dispatcher.close()

    async def _ready(
        self, lanes: tuple[str, str], *, exclude: set[int], limit: int
    ) -> list[tuple[int, bytes, int]]:
        """The next messages due: the urgent lane's first, then the bulk lane's, each in
        queue order (one query per lane, so each walks its own index in order)."""
        ready: list[tuple[int, bytes, int]] = []
        async with self._database.session() as session:
            for lane in reversed(lanes):
                if len(ready) >= limit:
                    break
                rows = await session.execute(
                    _READY,
                    {
                        "lane": lane,
                        "now": time.time(),
                        "exclude": list(exclude),
                        "limit": limit - len(ready),
                    },
                )
                ready += [(row.id, row.body, row.attempt) for row in rows]
        return ready

    async def _deliver(
        self,
        message_id: int,
        parsed: Envelope | PoisonMessage,
        attempt: int,
        handler: Handler,
    ) -> None:
        try:
            if isinstance(parsed, PoisonMessage):
                raise parsed
            await handler(parsed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._retry_or_park(message_id, attempt, exc)
            return
        async with self._settling.session() as session, session.begin():
            await session.execute(_SETTLED, {"message_id": message_id})

    async def _retry_or_park(self, message_id: int, attempt: int, exc: Exception) -> None:
        park = isinstance(exc, PoisonMessage) or attempt >= self.delivery_limit
        log.warning(
            "message %s failed on attempt %s (%s)",
            message_id,
            attempt,
            "parked" if park else "will retry",
            exc_info=exc,
        )
        values: dict[str, object] = {"error": describe_error(exc)}
        if park:
            values["parked"] = True
        else:
            values["attempt"] = attempt + 1
            values["available_at"] = time.time() + backoff_seconds(attempt, self._retry_base)
        async with self._settling.session() as session, session.begin():
            await session.execute(
                update(messages).where(messages.c.id == message_id).values(**values)
            )

    async def parked(self, queue: str, *, limit: int = 100) -> list[ParkedMessage]:
        async with self._database.session() as session:
            rows = (
                await session.execute(
                    select(messages)
                    .where(messages.c.queue.in_(lanes_of(queue)), messages.c.parked.is_(True))
                    .order_by(messages.c.id)
                    .limit(limit)
                )
            ).all()
        return [
            ParkedMessage(
                queue=queue,
                event_id=row.event_id,
                routing_key=row.routing_key,
                attempts=row.attempt,
                error=row.error,
                body=row.body,
            )
            for row in rows
        ]

    async def replay(
        self, queue: str, *, event_ids: Collection[str] | None = None, limit: int | None = None
    ) -> int:
        replayed, after = 0, 0
        while limit is None or replayed < limit:
            batch = REPLAY_BATCH if limit is None else min(REPLAY_BATCH, limit - replayed)
            if queue == UNROUTED:
                moved, last = await self._route_unrouted(
                    event_ids=event_ids, limit=batch, after=after
                )
                if last is None:
                    break
                after = last
            else:
                moved = await self._replay_batch(queue, event_ids=event_ids, limit=batch)
                if moved < batch:
                    replayed += moved
                    break
            replayed += moved
        return replayed

    async def _replay_batch(
        self, queue: str, *, event_ids: Collection[str] | None, limit: int
    ) -> int:
        condition = messages.c.queue.in_(lanes_of(queue)) & messages.c.parked.is_(True)
        if event_ids is not None:
            condition &= messages.c.event_id.in_(list(event_ids))
        chosen = select(messages.c.id).where(condition).order_by(messages.c.id).limit(limit)
        async with self._database.session() as session, session.begin():
            result = await session.execute(
                update(messages)
                .where(messages.c.id.in_(chosen.scalar_subquery()))
                .values(parked=False, attempt=1, available_at=time.time(), error="")
            )
        self._wakeups[queue].set()
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def depth(self, queue: str) -> int:
        async with self._database.session() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(messages)
                .where(
                    messages.c.queue.in_(lanes_of(queue)),
                    messages.c.parked.is_(queue == UNROUTED),
                )
            )
        return int(count or 0)

    async def queues(self) -> list[str]:
        async with self._database.session() as session:
            return list((await session.scalars(select(bindings.c.queue).distinct())).all())


def _lane_for(queue: str, message: Outgoing) -> str:
    return urgent_lane(queue) if message.urgent and queue != UNROUTED else queue


def _row(message: Outgoing, *, queue: str, now: float) -> dict[str, Any]:
    return {
        "queue": queue,
        "event_id": message.event_id,
        "routing_key": message.routing_key,
        "body": message.body,
        "attempt": 1,
        "available_at": now,
        # Unrouted events wait for an operator like parked ones; no consumer takes them.
        "parked": queue == UNROUTED,
        "error": "no queue was bound for its routing key" if queue == UNROUTED else "",
    }


def _queues_for(routes: Sequence[tuple[str, str]], routing_key: str) -> set[str]:
    return {queue for queue, pattern in routes if topic_matches(pattern, routing_key)}
