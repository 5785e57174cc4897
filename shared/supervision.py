"""Workers that survive: which failures are the infrastructure's (wait and try again, spend
nothing), capped back-off with jitter, and a supervisor that restarts each background task on
its own and reports its liveness to ``/readyz`` and ``/metrics``.
"""

import asyncio
import errno
import logging
import random
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import redis.exceptions
import sqlalchemy.exc
from aio_pika.exceptions import AMQPConnectionError, ChannelClosed, ChannelInvalidStateError

from shared.bus.transport import TransportError, describe_error
from shared.observability import WORKER_RESTARTS, WORKER_UP

log = logging.getLogger(__name__)
T = TypeVar("T")

# The database, the broker or the key-value store out of reach, overloaded or restarting:
# the same work succeeds once they are back. A handler's own failure is none of these.
_TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,
    socket.gaierror,  # a host name that does not resolve while its container is down
    TransportError,
    # Not aio-pika's CONNECTION_EXCEPTIONS: it holds RuntimeError, which any handler may raise.
    AMQPConnectionError,
    ChannelClosed,
    ChannelInvalidStateError,
    sqlalchemy.exc.TimeoutError,  # no free connection in the pool
    sqlalchemy.exc.DisconnectionError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InterfaceError,  # the connection closed in the middle of an operation
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # class 40: deadlock, serialization failure
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
_SQLITE_TRANSIENT = ("database is locked", "disk i/o error", "unable to open database")
# Other OSErrors of the network (a missing file or a refused permission is no outage).
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.ETIMEDOUT,
    errno.EPIPE,
}


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is an infrastructure failure rather than the
    handler's own: those pause and retry the same work without counting an attempt."""
    for cause in _causes(exc):
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, _TRANSIENT) or _network_error(cause):
            return True
        if isinstance(cause, sqlite3.OperationalError) and str(cause).lower().startswith(
            _SQLITE_TRANSIENT
        ):
            return True
    return False


def _network_error(exc: BaseException) -> bool:
    if not isinstance(exc, OSError):
        return False
    # asyncio's connect to a name with several addresses raises one plain OSError for all.
    return exc.errno in _NETWORK_ERRNOS or str(exc).startswith("Multiple exceptions: ")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what it was raised from, and a wrapped driver error (SQLAlchemy's ``orig``);
    not the implicit context, which a handler's own failure may carry by accident."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            yield from _causes(orig)
        current = current.__cause__


def capped_backoff(failures: int, *, base: float, cap: float) -> float:
    """Delay after ``failures`` failures in a row: doubling from ``base`` up to ``cap``, with
    jitter (between half and all of it) so that restarted replicas do not retry in step.
    Safe for any count: the exponent stops growing once the cap is reached."""
    doublings = min(max(failures - 1, 0), 62)
    delay = min(cap, base * 2.0**doublings)
    return delay * random.uniform(0.5, 1.0)


async def pause_while_transient(
    work: Callable[[], Awaitable[T]], *, what: str, base: float = 0.1, cap: float = 5.0
) -> T:
    """Run ``work`` until it succeeds or fails on its own; an infrastructure failure waits
    (capped back-off) and runs it again, for as long as the outage lasts."""
    pauses = 0
    while True:
        try:
            return await work()
        except Exception as exc:
            if not is_transient(exc):
                raise
            pauses += 1
            delay = capped_backoff(pauses, base=base, cap=cap)
            log.warning(
                "%s paused by an infrastructure failure (%s times), again in %.1fs: %s",
                what,
                pauses,
                delay,
                describe_error(exc),
            )
            await asyncio.sleep(delay)


@dataclass
class TaskHealth:
    name: str
    up: bool = False
    changed_at: float = 0.0  # monotonic
    restarts: int = 0
    last_error: str = ""

    def report(self, now: float) -> dict[str, Any]:
        return {
            "up": self.up,
            "for_seconds": round(now - self.changed_at, 1),
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


Work = Callable[[], Awaitable[None]]


class Supervisor:
    """Runs named background tasks (relays, consumers, periodic jobs) until cancelled. A task
    that fails, or ends, is restarted on its own after a capped back-off; the others go on.
    A task counts as healthy while it runs, or for ``grace_seconds`` after it went down."""

    def __init__(
        self, *, restart_seconds: float, restart_cap_seconds: float, grace_seconds: float
    ) -> None:
        self._base = restart_seconds
        self._cap = restart_cap_seconds
        self._grace = grace_seconds
        self.tasks: dict[str, TaskHealth] = {}
        # Set while run() runs: a worker loop that was started and ended is not healthy.
        self.started = False
        self.running = False

    async def run(self, work: Mapping[str, Work]) -> None:
        self.started = self.running = True
        for name in work:
            self.tasks[name] = TaskHealth(name)
        tasks = [asyncio.create_task(self._keep(name, w), name=name) for name, w in work.items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.running = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for name in work:
                self._mark(self.tasks[name], up=False)

    async def _keep(self, name: str, work: Work) -> None:
        health = self.tasks[name]
        failures = 0
        while True:
            self._mark(health, up=True)
            started = time.monotonic()
            try:
                await work()
                error = "the task ended"
                log.error("worker task %s ended; restarting it", name)
            except Exception as exc:
                error = describe_error(exc)
                log.exception("worker task %s failed; restarting it", name)
            # A task that ran a good while before failing starts its back-off afresh.
            failures = 1 if time.monotonic() - started > self._cap else failures + 1
            health.last_error = error
            self._mark(health, up=False)
            await asyncio.sleep(capped_backoff(failures, base=self._base, cap=self._cap))
            health.restarts += 1
            WORKER_RESTARTS.labels(name).inc()

    @staticmethod
    def _mark(health: TaskHealth, *, up: bool) -> None:
        health.up = up
        health.changed_at = time.monotonic()
        WORKER_UP.labels(health.name).set(1 if up else 0)

    def healthy(self) -> bool:
        if self.started and not self.running:
            return False
        now = time.monotonic()
        return all(h.up or now - h.changed_at < self._grace for h in self.tasks.values())

    def report(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {name: health.report(now) for name, health in sorted(self.tasks.items())}
