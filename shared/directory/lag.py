"""How far a projection has applied its producer's stream. The producer marks the head of
its stream in the key-value store on every commit (``ServiceRuntime``); the projection
records the highest position it applied (``directory_streams``). The difference, in
positions and in the age of the view, is its lag: in ``/readyz``, in ``/metrics``, and a
reason to refuse work that would silently miss what has not arrived yet."""

import asyncio
import math
import time
from dataclasses import dataclass

from sqlalchemy import select

from shared.directory.tables import DirectoryModels
from shared.observability import PROJECTION_LAG_EVENTS, PROJECTION_LAG_SECONDS
from shared.problems import Unavailable
from shared.service import ServiceRuntime, stream_key

POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Lag:
    projection: str
    stream: str
    # The producer's head and what the projection applied (None: nothing yet).
    head: int | None
    applied: int | None
    events: int
    seconds: float

    @property
    def caught_up(self) -> bool:
        return self.events == 0

    def detail(self) -> dict[str, object]:
        return {
            "stream": self.stream,
            "head": self.head,
            "applied": self.applied,
            "lag_events": self.events,
            "lag_seconds": round(self.seconds, 3),
            "caught_up": self.caught_up,
        }


async def measure(
    runtime: ServiceRuntime, models: DirectoryModels, *, projection: str, stream: str
) -> Lag:
    """The projection's lag now (also set on its gauges). Without a head marked (nothing
    committed since the key-value store started) there is nothing known to wait for."""
    mark = await runtime.kv.mark(stream_key(stream))
    table = models.table(models.Stream)
    async with runtime.database.session() as session:
        query = select(table.c.position, table.c.event_at).where(table.c.stream == stream)
        row = (await session.execute(query)).first()
    applied, applied_at = (row.position, row.event_at.timestamp()) if row else (None, None)
    events, seconds = 0, 0.0
    if mark is not None and (applied is None or applied < mark[0]):
        head, head_at = mark
        events = head - (applied or 0)
        # How much older the view is than the producer's state (unknown start: since the head).
        seconds = max(0.0, head_at - (applied_at or head_at)) or max(0.0, time.time() - head_at)
    labels = (runtime.name, projection, stream)
    PROJECTION_LAG_EVENTS.labels(*labels).set(events)
    PROJECTION_LAG_SECONDS.labels(*labels).set(seconds)
    return Lag(projection, stream, mark[0] if mark else None, applied, events, seconds)


async def wait_caught_up(
    runtime: ServiceRuntime, models: DirectoryModels, *, projection: str, stream: str
) -> Lag:
    """Wait up to ``projection_wait_seconds`` for the projection to catch up; if it doesn't,
    a 503 naming the lag, with ``Retry-After``."""
    within = runtime.settings.projection_wait_seconds
    deadline = time.monotonic() + within
    while True:
        lag = await measure(runtime, models, projection=projection, stream=stream)
        if lag.caught_up or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    if lag.caught_up:
        return lag
    retry = max(1, math.ceil(min(lag.seconds, 60.0)))
    raise Unavailable(
        f"the {projection} is {lag.events} events ({lag.seconds:.1f} s) behind the {stream}: "
        "what has not arrived yet would be missed; try again shortly",
        headers={"Retry-After": str(retry)},
    )
