"""The unit of work: one session, one transaction, and the events it will publish.

Services work on it; only the boundary (a route, a consumer, a command) commits. Events
emitted during the work are written to the outbox in the same transaction, so they leave
exactly when the change is durable, and never otherwise.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cache
from types import TracebackType
from typing import TypeVar

from sqlalchemy import ColumnElement, Insert, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.authz import SCOPE_KEY, Scope
from shared.db import Database
from shared.events import Envelope, Event
from shared.kv import KeyValue
from shared.observability import correlation_id
from shared.problems import NotFound
from shared.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)


class UnitOfWork:
    def __init__(
        self,
        *,
        service: str,
        database: Database,
        outbox: Table,
        access_log: Table,
        principal: Principal,
        on_commit: Callable[[int], Awaitable[None]],
        kv: KeyValue,
        settings: Settings,
        causation_id: uuid.UUID | None = None,
    ) -> None:
        self.service = service
        # The deployment's settings: the town office's clock (``settings.zone``) among them.
        self.settings = settings
        self.database = database
        self.principal = principal
        self._session: AsyncSession | None = None
        self._outbox = outbox
        # Where the personal-data presenter (shared/privacy.py) records unmasked reads.
        self.access_log = access_log
        self._on_commit = on_commit
        self.kv = kv
        self._after_commit: list[Callable[[], Awaitable[None]]] = []
        self._causation_id = causation_id
        # Emitted events as outbox rows, until written to the outbox.
        self._pending: list[dict[str, object]] = []
        # The position of the last event written to the outbox, until the commit.
        self._head: int | None = None
        # The policies checked during the work (``resource:action``): the HTTP boundary
        # refuses to commit a mutating request that checked none.
        self.checked: list[str] = []

    @property
    def session(self) -> AsyncSession:
        """The unit's session, opened at its first use: a request answered from another
        transaction (a single tube recorded in its group's) builds and closes none."""
        if self._session is None:
            self._session = self.database.session()
            self._session.info[SCOPE_KEY] = self.principal.scope
        return self._session

    @property
    def scope(self) -> Scope:
        return self.principal.scope

    @property
    def dialect(self) -> str:
        return self.database.dialect

    async def get(
        self,
        model: type[T],
        entity_id: uuid.UUID,
        *,
        what: str,
        field: str | None = None,
        where: ColumnElement[bool] | None = None,
    ) -> T:
        """The entity if it exists and the caller may see it (``where`` narrows what a
        service shows beyond the scope); otherwise a 404 naming it (and the request field
        that named it)."""
        query = select(model).where(model.id == entity_id)  # type: ignore[attr-defined]
        if where is not None:
            query = query.where(where)
        found = await self.session.scalar(query)
        if found is None:
            message = f"no {what} {entity_id} in your scope"
            errors = [{"field": field, "message": message}] if field else None
            raise NotFound(message, errors=errors)
        return found

    def emit(
        self,
        event: Event,
        *,
        compound_id: uuid.UUID | None = None,
        deliver_at: datetime | None = None,
        urgent: bool = False,
    ) -> uuid.UUID:
        """Queue the event for the outbox; returns its envelope's id.

        ``deliver_at`` holds it in the outbox until then (quiet hours, recurring requests,
        SLA timers): durable like any outbox row, published by the relay once due.
        ``urgent`` sends it in the consumers' urgent lane, ahead of their bulk backlog."""
        if deliver_at is not None and deliver_at.tzinfo is None:
            raise ValueError("deliver_at must be an aware datetime")
        event_id, body = Envelope.json_of(
            event,
            producer=self.service,
            correlation_id=correlation_id.get(),
            causation_id=self._causation_id,
            compound_id=compound_id,
        )
        self._pending.append(
            {
                "event_id": event_id,
                "routing_key": event.type,
                "body": body,
                "deliver_at": deliver_at,
                "urgent": urgent,
            }
        )
        return event_id

    async def flush_events(self) -> None:
        """Write emitted events to the outbox now (large batches flush as they go)."""
        if not self._pending:
            return
        now = datetime.now(UTC)
        rows = [{**row, "created_at": now} for row in self._pending]
        self._pending.clear()
        # Their positions come back with the insert: the stream's head once this commits
        # is at least the last of them (every event committed before took a lower one).
        written = await self.session.execute(_writing(self._outbox), rows)
        self._head = max(self._head or 0, max(written.scalars()))

    def after_commit(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` once the transaction is committed (and never if it is not): telling
        other processes through the key-value store. The change is durable by then, so a
        failure is logged, not raised; whoever registers work must have a way to repeat it."""
        self._after_commit.append(work)

    async def commit(self) -> None:
        await self.flush_events()
        if self._touched():
            await self.session.commit()
        head, self._head = self._head, None
        if head is not None:
            await self._on_commit(head)
        done, self._after_commit = self._after_commit, []
        for work in done:
            try:
                await work()
            except Exception:
                log.warning("work after the commit of %s failed", self.service, exc_info=True)

    def _touched(self) -> bool:
        """Whether the session began a transaction or holds changes a commit would flush (a
        request whose work was written elsewhere commits nothing: no round trip)."""
        session = self._session
        if session is None:
            return False
        return bool(session.in_transaction() or session.new or session.dirty or session.deleted)

    async def rollback(self) -> None:
        self._after_commit.clear()
        self._pending.clear()
        self._head = None
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> "UnitOfWork":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None and self._session.in_transaction():
            await self.rollback()
        await self.close()


@cache
def _writing(outbox: Table) -> Insert:
    """The outbox insert that returns its positions, built once per service."""
    return outbox.insert().returning(outbox.c.seq)
