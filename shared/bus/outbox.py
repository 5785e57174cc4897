"""The relay: publishes committed outbox rows with confirms, then deletes them.

A row with a ``deliver_at`` waits in the outbox until that time: delayed delivery is as
durable as the outbox, on both transports (the relay polls, so it leaves within an interval
of being due).

A relay killed after publishing but before deleting publishes the same rows again when it
restarts; consumers' inboxes make that harmless. Several relays may run at once on
PostgreSQL: each takes its batch with ``FOR UPDATE SKIP LOCKED``.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sqlalchemy import Table, bindparam, delete, func, or_, select

from shared.bus.transport import Outgoing, Transport
from shared.db import Database
from shared.events import stamp_position
from shared.observability import MESSAGES, OUTBOX_BACKLOG
from shared.supervision import capped_backoff, is_transient

log = logging.getLogger(__name__)

# The longest wait between two tries while the broker or the database is out of reach.
BACKOFF_CAP_SECONDS = 30.0


class Relay:
    def __init__(
        self,
        *,
        service: str,
        database: Database,
        outbox: Table,
        transport: Transport,
        batch: int,
        interval_seconds: float,
    ) -> None:
        self.service = service
        self._database = database
        self._outbox = outbox
        self._transport = transport
        self._batch = batch
        self._interval = interval_seconds
        # Built once: a statement built per poll is traversed anew by the scope check and
        # by SQLAlchemy's cache key, each poll (a tenth of a millisecond each, many times a
        # second in every service).
        table = outbox
        due = or_(table.c.deliver_at.is_(None), table.c.deliver_at <= bindparam("now"))
        pending = select(
            table.c.seq, table.c.event_id, table.c.routing_key, table.c.body, table.c.urgent
        )
        pending = pending.where(due).order_by(table.c.seq).limit(batch)
        if not database.is_sqlite:
            pending = pending.with_for_update(skip_locked=True)
        self._pending = pending
        self._published = delete(table).where(table.c.seq.in_(bindparam("seqs", expanding=True)))
        self._backlog = select(func.count()).select_from(table).where(due)

    async def publish_pending(self) -> int:
        """Publish one batch; return how many events left the outbox."""
        async with self._database.session() as session, session.begin():
            rows = (await session.execute(self._pending, {"now": datetime.now(UTC)})).all()
            if not rows:
                return 0
            await self._transport.publish(
                [
                    Outgoing(
                        str(r.event_id),
                        r.routing_key,
                        stamp_position(r.body, r.seq).encode(),
                        bool(r.urgent),
                    )
                    for r in rows
                ]
            )
            await session.execute(self._published, {"seqs": [r.seq for r in rows]})
        MESSAGES.labels(self.service, "outbox", "published").inc(len(rows))
        return len(rows)

    async def drain(self) -> int:
        total = 0
        while (published := await self.publish_pending()) > 0:
            total += published
        return total

    async def backlog(self) -> int:
        # Scheduled rows not yet due are not late: counting them would read as a stuck relay.
        async with self._database.session() as session:
            count = int(await session.scalar(self._backlog, {"now": datetime.now(UTC)}) or 0)
        OUTBOX_BACKLOG.labels(self.service).set(count)
        return count

    async def run(self, wakeups: AsyncIterator[None]) -> None:
        """Publish until cancelled: at once when woken, at least every interval."""
        pending_wakeup: asyncio.Task[None] | None = None
        listening = True
        failures = 0
        try:
            while True:
                try:
                    published = await self.publish_pending()
                    failures = 0
                except Exception as exc:
                    if not is_transient(exc):
                        raise  # a bug, not an outage: the supervisor restarts the relay
                    failures += 1
                    delay = capped_backoff(failures, base=self._interval, cap=BACKOFF_CAP_SECONDS)
                    log.warning(
                        "relay of %s failed, retrying in %.1fs: %s", self.service, delay, exc
                    )
                    await asyncio.sleep(delay)
                    continue
                if published == self._batch:
                    continue
                if not listening:
                    await asyncio.sleep(self._interval)
                    continue
                if pending_wakeup is None:
                    pending_wakeup = asyncio.ensure_future(anext(wakeups))
                done, _ = await asyncio.wait({pending_wakeup}, timeout=self._interval)
                if done:
                    ended, pending_wakeup = pending_wakeup.exception(), None
                    if ended is not None:
                        # Asking an ended source again would answer at once, for ever.
                        listening = False
                        log.warning(
                            "relay of %s lost its wake-ups, polling: %r", self.service, ended
                        )
        finally:
            if pending_wakeup is not None:
                pending_wakeup.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending_wakeup
