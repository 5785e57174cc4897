"""One process's view of the system: the transport, the key-value store, and a runtime per
service it hosts. The embedded mode hosts every service; a distributed process hosts one."""

import logging
from collections.abc import Sequence

from cordon.services import ALL
from shared.bus.local import LocalTransport
from shared.bus.rabbit import RabbitTransport
from shared.bus.transport import Transport
from shared.kv import KeyValue, MemoryKeyValue, RedisKeyValue
from shared.migrations import upgrade
from shared.service import ServiceRuntime, ServiceSpec, supervisor_for, topology
from shared.settings import Settings

log = logging.getLogger(__name__)


def make_transport(settings: Settings) -> Transport:
    if settings.broker_url:
        return RabbitTransport(
            url=settings.broker_url,
            exchange=settings.exchange,
            delivery_limit=settings.delivery_limit,
            retry_base_seconds=settings.retry_base_seconds,
            publish_timeout_seconds=settings.publish_timeout_seconds,
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return LocalTransport(
        url=f"sqlite+aiosqlite:///{settings.data_dir / 'bus.db'}",
        delivery_limit=settings.delivery_limit,
        retry_base_seconds=settings.retry_base_seconds,
    )


def make_kv(settings: Settings) -> KeyValue:
    if settings.redis_url:
        return RedisKeyValue(settings.redis_url, namespace=settings.schema_prefix)
    return MemoryKeyValue()


class Platform:
    def __init__(
        self,
        settings: Settings,
        specs: Sequence[ServiceSpec],
        *,
        topology: Sequence[ServiceSpec] | None = None,
    ) -> None:
        """Hosts ``specs``; declares the queues of ``topology`` (every service of the
        deployment by default), so that what a hosted service publishes before another
        service first starts waits in that service's queue."""
        self.settings = settings
        self.topology = tuple(topology if topology is not None else ALL)
        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.transport = make_transport(settings)
        self.kv = make_kv(settings)
        self.runtimes = {
            spec.name: ServiceRuntime(spec, settings=settings, transport=self.transport, kv=self.kv)
            for spec in specs
        }
        # Restarts each relay, consumer and job on its own; /readyz reads their liveness.
        self.supervisor = supervisor_for(settings)

    def runtime(self, name: str) -> ServiceRuntime:
        return self.runtimes[name]

    async def migrate(self) -> None:
        for runtime in self.runtimes.values():
            await upgrade(runtime.database, runtime.spec.migrations)

    async def start(self, *, migrate: bool = True) -> None:
        await self.transport.connect()
        if migrate:
            await self.migrate()
        await self.declare()
        for runtime in self.runtimes.values():
            await runtime.announce_head()

    async def declare(self) -> None:
        """The bus topology of the whole deployment (idempotent): before any producer runs."""
        for subscription in topology(self.topology, settings=self.settings):
            await self.transport.declare(subscription)

    async def run_workers(self, *, periodic: bool = True) -> None:
        """Every hosted service's worker tasks, supervised, until cancelled (``periodic=False``:
        without the periodic jobs, for work that must see nothing made by the real clock)."""
        tasks = {
            name: w
            for r in self.runtimes.values()
            for name, w in r.worker_tasks(periodic=periodic).items()
        }
        await self.supervisor.run(tasks)

    async def ready(self) -> dict[str, bool]:
        checks = {f"database:{name}": await r.ready() for name, r in self.runtimes.items()}
        checks["bus"] = await self.transport.ping()
        checks["kv"] = await self.kv.ping()
        # Worker tasks (where this process runs them): each up, or down less than the grace.
        checks["workers"] = self.supervisor.healthy()
        return checks

    async def lags(self) -> dict[str, dict[str, object]]:
        """How far behind each service's projections are (sets their gauges too)."""
        found: dict[str, dict[str, object]] = {}
        for name, runtime in self.runtimes.items():
            for projection in runtime.spec.projections:
                key = f"{name}.{projection.name}"
                try:
                    found[key] = (await projection.lag(runtime)).detail()
                except Exception as exc:
                    log.warning("could not measure the lag of %s: %r", key, exc)
                    found[key] = {"error": repr(exc)}
        return found

    async def close(self) -> None:
        for runtime in self.runtimes.values():
            await runtime.close()
        await self.transport.close()
        await self.kv.close()
