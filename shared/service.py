"""How a service plugs into the kernel: a :class:`ServiceSpec` says what it owns (tables,
migrations, API resources, consumers, re-sync); a :class:`ServiceRuntime` is that service
running in one process, with its own database and the process's transport and key-value store.
"""

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter
from sqlalchemy import MetaData, func, select, text

from shared.auth import Principal
from shared.bus.outbox import Relay
from shared.bus.transport import OrderKey, Subscription, Transport, by_compound
from shared.db import Database, KernelTables, insert_ignoring_duplicates
from shared.effects import EffectLedger
from shared.events import Envelope
from shared.kv import KeyValue
from shared.observability import MESSAGES, correlation_id
from shared.settings import Settings
from shared.supervision import Supervisor, Work, pause_while_transient
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


def stream_key(service: str) -> str:
    return f"cordon:stream:{service}"


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
class Worker:
    """A long-running loop of a service's worker process (notify's dispatcher), restarted by
    the supervisor like the relay and the consumers if it fails."""

    name: str
    run: Callable[["ServiceRuntime"], Awaitable[None]]


class ProjectionLag(Protocol):
    @property
    def caught_up(self) -> bool: ...

    def detail(self) -> dict[str, object]: ...


class Projection(Protocol):
    """A local projection of another service's events that can say how far behind it is
    (``shared/directory``)."""

    @property
    def name(self) -> str: ...

    async def lag(self, runtime: "ServiceRuntime") -> ProjectionLag: ...

    async def require_caught_up(self, runtime: "ServiceRuntime") -> ProjectionLag: ...


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
    workers: tuple[Worker, ...] = ()
    # Shown with their lag in /readyz and /metrics.
    projections: tuple[Projection, ...] = ()


def subscription_of(spec: ServiceSpec, consumer: Consumer, *, settings: Settings) -> Subscription:
    return Subscription(
        queue=f"{settings.schema_prefix}{spec.name}.{consumer.name}",
        bindings=consumer.bindings,
        concurrency=consumer.concurrency,
        order_key=consumer.order_key,
    )


def topology(specs: Sequence[ServiceSpec], *, settings: Settings) -> list[Subscription]:
    """Every consumer queue of these services with its bindings: declared before any of them
    publishes, so an event for a service deployed later waits in its queue."""
    return [subscription_of(spec, c, settings=settings) for spec in specs for c in spec.consumers]


def supervisor_for(settings: Settings) -> Supervisor:
    return Supervisor(
        restart_seconds=settings.worker_restart_seconds,
        restart_cap_seconds=settings.worker_restart_cap_seconds,
        grace_seconds=settings.worker_grace_seconds,
    )


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
            access_log=self.spec.kernel.access_log,
            principal=principal,
            on_commit=self._events_committed,
            kv=self.kv,
            settings=self.settings,
            causation_id=causation_id,
        )

    @property
    def stream_key(self) -> str:
        """Where the head of this service's event stream is marked (see ``shared/directory``)."""
        return stream_key(self.name)

    async def _events_committed(self, head: int) -> None:
        try:
            await self.kv.advance(
                self.stream_key, position=head, at=time.time(), wake=self.wakeup_channel
            )
        except Exception:
            # Projections then see the head late: they wait, never act on a false "caught up";
            # the relay also polls: a lost wake-up delays events, never loses them.
            log.warning("could not mark the stream head of %s", self.name, exc_info=True)

    async def announce_head(self) -> None:
        """Mark the head of this service's stream as the database has it, for a key-value
        store that started empty (the embedded mode's, after a restart): projections then
        know what they still have to apply. SQLite's AUTOINCREMENT counter holds the last
        committed position; on PostgreSQL the outbox's highest row (Redis keeps the mark
        across restarts there)."""
        outbox = self.spec.kernel.outbox
        if self.database.is_sqlite:
            query: Any = text("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
        else:
            query = select(func.max(outbox.c.seq))
        try:
            async with self.database.session() as session:
                head = await session.scalar(query)
            if head:
                await self.kv.advance(self.stream_key, position=int(head), at=time.time())
        except Exception:
            # The next commit marks it; meanwhile projections can't tell they are behind.
            log.warning("could not read the stream head of %s", self.name, exc_info=True)

    def wakeups(self) -> AsyncIterator[None]:
        return self.kv.signals(self.wakeup_channel)

    def subscription(self, consumer: Consumer) -> Subscription:
        return subscription_of(self.spec, consumer, settings=self.settings)

    async def declare(self) -> None:
        for consumer in self.spec.consumers:
            await self.transport.declare(self.subscription(consumer))

    async def consume(self, consumer: Consumer) -> None:
        subscription = self.subscription(consumer)

        async def handle(envelope: Envelope) -> None:
            # A database out of reach is not the handler's failure: wait for it with the
            # message in hand instead of spending the message's tries (and parking it).
            await pause_while_transient(
                lambda: self.process(consumer, envelope, queue=subscription.queue),
                what=f"consumer {subscription.queue}",
            )

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

    def worker_tasks(self, *, periodic: bool = True) -> dict[str, Work]:
        """The relay, every consumer and every periodic job of this service, by task name
        (``periodic=False``: not the periodic jobs, which judge by the real clock)."""
        tasks: dict[str, Work] = {f"{self.name}.relay": lambda: self.relay.run(self.wakeups())}
        for consumer in self.spec.consumers:
            tasks[f"{self.name}.{consumer.name}"] = functools.partial(self.consume, consumer)
        for job in self.spec.periodic if periodic else ():
            tasks[f"{self.name}.{job.name}"] = functools.partial(self.repeat, job)
        for worker in self.spec.workers:
            tasks[f"{self.name}.{worker.name}"] = functools.partial(worker.run, self)
        return tasks

    async def run_worker(self, supervisor: Supervisor | None = None) -> None:
        """Run :meth:`worker_tasks` until cancelled, each restarted on its own if it fails."""
        await (supervisor or supervisor_for(self.settings)).run(self.worker_tasks())

    async def wait_for_projections(self) -> bool:
        """Whether any of the service's projections was behind; if so, it has been waited
        for (bounded by ``projection_wait_seconds``, else ``Unavailable`` naming the lag)."""
        behind = False
        for projection in self.spec.projections:
            if not (await projection.lag(self)).caught_up:
                behind = True
                await projection.require_caught_up(self)
        return behind

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
