"""How a service plugs into the kernel: a :class:`ServiceSpec` says what it owns (tables,
migrations, API resources, consumers, re-sync); a :class:`ServiceRuntime` is that service
running in one process, with its own database and the process's transport and key-value store.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter
from sqlalchemy import MetaData, func, select

from shared.auth import Principal
from shared.bus.outbox import Relay
from shared.bus.transport import OrderKey, Subscription, Transport, by_compound
from shared.db import Database, KernelTables, insert_ignoring_duplicates
from shared.effects import EffectLedger
from shared.events import Envelope
from shared.kv import KeyValue
from shared.observability import MESSAGES, correlation_id
from shared.settings import Settings
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

ConsumerHandler = Callable[[UnitOfWork, Envelope], Awaitable[None]]
Resync = Callable[[UnitOfWork], Awaitable[int]]
PeriodicWork = Callable[[UnitOfWork, datetime], Awaitable[None]]


@dataclass(frozen=True)
class Consumer:
    """Reacts to events; runs in the service's database with an inbox, so a redelivered
    event changes nothing."""

    name: str
    bindings: tuple[str, ...]
    handle: ConsumerHandler
    # Events handled at once; those with the same order key (the compound by default) one
    # at a time, in the order the queue holds them.
    concurrency: int = 1
    order_key: OrderKey = by_compound


@dataclass(frozen=True)
class Periodic:
    """Work a worker repeats on a timer (overdue checks, daily clocks), given the time to
    judge by. Every worker replica runs it, so it must be idempotent: state it acts on is
    marked in the same transaction as the events it emits."""

    name: str
    every_seconds: float
    run: PeriodicWork


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    metadata: MetaData
    kernel: KernelTables
    migrations: Path
    routers: Sequence[APIRouter]
    # First path segments under /v1 this service owns; the gateway routes them here.
    resources: tuple[str, ...]
    consumers: tuple[Consumer, ...] = ()
    # Republishes a snapshot of the service's state as events; returns the events written.
    resync: Resync | None = None
    startup: tuple[Callable[["ServiceRuntime"], Awaitable[None]], ...] = field(default=())
    periodic: tuple[Periodic, ...] = ()


class ServiceRuntime:
    def __init__(
        self, spec: ServiceSpec, *, settings: Settings, transport: Transport, kv: KeyValue
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.transport = transport
        self.kv = kv
        self.database = Database(
            url=settings.service_database_url(spec.name),
            schema=settings.service_schema(spec.name),
        )
        # Exactly-once calls to providers (shared.effects), in this service's database.
        self.effects = EffectLedger(database=self.database, table=spec.kernel.effects)
        self.relay = Relay(
            service=spec.name,
            database=self.database,
            outbox=spec.kernel.outbox,
            transport=transport,
            batch=settings.relay_batch,
            interval_seconds=settings.relay_interval_seconds,
        )

    @property
    def wakeup_channel(self) -> str:
        return f"cordon:outbox:{self.name}"

    def uow(self, principal: Principal, *, causation_id: uuid.UUID | None = None) -> UnitOfWork:
        return UnitOfWork(
            service=self.name,
            database=self.database,
            outbox=self.spec.kernel.outbox,
            principal=principal,
            on_commit=self._events_committed,
            kv=self.kv,
            causation_id=causation_id,
        )

    async def _events_committed(self) -> None:
        try:
            await self.kv.signal(self.wakeup_channel)
        except Exception:
            # The relay also polls: a lost wake-up delays events, never loses them.
            log.warning("could not wake the relay of %s", self.name, exc_info=True)

    def wakeups(self) -> AsyncIterator[None]:
        return self.kv.signals(self.wakeup_channel)

    def subscription(self, consumer: Consumer) -> Subscription:
        return Subscription(
            queue=f"{self.settings.schema_prefix}{self.name}.{consumer.name}",
            bindings=consumer.bindings,
            concurrency=consumer.concurrency,
            order_key=consumer.order_key,
        )

    async def declare(self) -> None:
        for consumer in self.spec.consumers:
            await self.transport.declare(self.subscription(consumer))

    async def consume(self, consumer: Consumer) -> None:
        subscription = self.subscription(consumer)

        async def handle(envelope: Envelope) -> None:
            await self.process(consumer, envelope, queue=subscription.queue)

        await self.transport.consume(subscription, handle)

    async def process(self, consumer: Consumer, envelope: Envelope, *, queue: str) -> bool:
        """Apply one event exactly once; return False when the inbox had it already."""
        correlation_id.set(envelope.correlation_id)
        inbox = self.spec.kernel.inbox
        principal = Principal.system(f"{self.name}.{consumer.name}")
        async with self.uow(principal, causation_id=envelope.id) as uow:
            claim = insert_ignoring_duplicates(inbox, self.database.dialect).values(
                consumer=consumer.name, event_id=envelope.id, processed_at=datetime.now(UTC)
            )
            first_time = (await uow.session.execute(claim)).rowcount == 1  # type: ignore[attr-defined]
            if not first_time:
                await uow.rollback()
                MESSAGES.labels(self.name, queue, "duplicate").inc()
                return False
            await consumer.handle(uow, envelope)
            await uow.commit()
        MESSAGES.labels(self.name, queue, "consumed").inc()
        return True

    async def tick(self, job: Periodic, *, now: datetime | None = None) -> None:
        """Run one periodic job once, in its own transaction."""
        async with self.uow(Principal.system(f"{self.name}.{job.name}")) as uow:
            await job.run(uow, now or datetime.now(UTC))
            await uow.commit()

    async def repeat(self, job: Periodic) -> None:
        while True:
            try:
                await self.tick(job)
            except Exception:
                # The next tick tries again; a failing job must not stop the worker.
                log.exception("periodic job %s.%s failed", self.name, job.name)
            await asyncio.sleep(job.every_seconds)

    async def run_worker(self) -> None:
        """The relay, every consumer and every periodic job of this service, until cancelled."""
        await self.declare()
        tasks = [asyncio.create_task(self.relay.run(self.wakeups()), name=f"{self.name}.relay")]
        tasks += [
            asyncio.create_task(self.consume(c), name=f"{self.name}.{c.name}")
            for c in self.spec.consumers
        ]
        tasks += [
            asyncio.create_task(self.repeat(j), name=f"{self.name}.{j.name}")
            for j in self.spec.periodic
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def ready(self) -> bool:
        try:
            async with self.database.session() as session:
                await session.execute(select(func.count()).select_from(self.spec.kernel.outbox))
            return True
        except Exception:
            log.exception("database of %s unreachable", self.name)
            return False

    async def close(self) -> None:
        await self.database.dispose()
