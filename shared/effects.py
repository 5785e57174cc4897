"""Exactly-once external effects (an SMS, a call to a provider), with the ``effects`` kernel
table as the ledger.

The inbox makes a consumer's *database* work happen once; a provider's call cannot join that
transaction. So an effect goes: **claim** its idempotency key (committed), **call** the
provider outside any transaction, passing the same key as the provider's idempotency key,
**confirm** the answer (committed). A crash between the call and the confirmation, or a call
that timed out, leaves the outcome unknown: before anyone calls again, the provider is asked
what it did with that key (**reconcile**), and only a provider that never heard of it is
called again. A claim held by a live worker is never taken over; one whose lease has run out
was abandoned (a crash), and its outcome is unknown.

Call :meth:`EffectLedger.perform` outside a unit of work's transaction (e.g. from a job that
sends what a consumer recorded): it commits its own small transactions around the call.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database, insert_ignoring_duplicates

log = logging.getLogger(__name__)

Result = dict[str, Any]
# Performs the effect under the idempotency key; raises ProviderRefused when the provider
# certainly did nothing, anything else when the outcome is unknown.
Call = Callable[[str], Awaitable[Result]]
# The provider's record of the key: what it did, or None if it never received it.
Reconcile = Callable[[str], Awaitable[Result | None]]


class Status(StrEnum):
    pending = "pending"
    unknown = "unknown"
    done = "done"
    failed = "failed"


class ProviderRefused(Exception):
    """The provider answered that it did nothing: the effect may be tried again as new."""


class EffectInProgress(Exception):
    """Another worker holds the claim on this key now; try again after ``retry_after``."""

    def __init__(self, key: str, *, retry_after: float) -> None:
        super().__init__(f"effect {key} is being performed elsewhere")
        self.key = key
        self.retry_after = retry_after


@dataclass(frozen=True)
class Claim:
    key: str
    # Done before: its result, and nothing to call.
    result: Result | None = None
    # The last attempt's outcome is unknown: ask the provider before calling.
    reconcile: bool = False


class EffectLedger:
    def __init__(self, *, database: Database, table: Table, lease_seconds: float = 60) -> None:
        self._database = database
        self._table = table
        self.lease = timedelta(seconds=lease_seconds)

    async def perform(self, key: str, *, call: Call, reconcile: Reconcile) -> Result:
        """The effect's result, performing it at most once whatever crashes or retries."""
        claim = await self.claim(key)
        if claim.result is not None:
            return claim.result
        if claim.reconcile:
            known = await reconcile(key)
            if known is not None:
                log.info("effect %s was performed before its confirmation was lost", key)
                await self.confirm(key, known)
                return known
        try:
            result = await call(key)
        except ProviderRefused as exc:
            await self._settle(key, Status.failed, error=f"{exc}")
            raise
        except BaseException as exc:
            # A timeout, a lost connection, a cancellation: the provider may have acted. If
            # even this cannot be written, the lease running out says the same later.
            try:
                await self._settle(key, Status.unknown, error=f"{type(exc).__name__}: {exc}")
            except Exception:
                log.warning("could not mark effect %s unknown", key, exc_info=True)
            raise
        await self.confirm(key, result)
        return result

    async def claim(self, key: str) -> Claim:
        """Take the key for one attempt (committed before returning)."""
        table = self._table
        now = datetime.now(UTC)
        async with self._database.session() as session, session.begin():
            fresh = insert_ignoring_duplicates(table, self._database.dialect).values(
                key=key,
                status=Status.pending,
                attempts=1,
                lease_until=now + self.lease,
                result=None,
                error="",
                created_at=now,
                updated_at=now,
            )
            if (await session.execute(fresh)).rowcount == 1:  # type: ignore[attr-defined]
                return Claim(key)
            query = select(table).where(table.c.key == key)
            if not self._database.is_sqlite:
                query = query.with_for_update()
            row = (await session.execute(query)).one()
            if row.status == Status.done:
                return Claim(key, result=row.result or {})
            abandoned = row.status == Status.pending and row.lease_until <= now
            if row.status == Status.pending and not abandoned:
                retry_after = (row.lease_until - now).total_seconds()
                raise EffectInProgress(key, retry_after=retry_after)
            await session.execute(
                update(table)
                .where(table.c.key == key)
                .values(
                    status=Status.pending,
                    attempts=table.c.attempts + 1,
                    lease_until=now + self.lease,
                    updated_at=now,
                )
            )
        # Failed means the provider did nothing: call again. Unknown or abandoned: ask first.
        return Claim(key, reconcile=row.status != Status.failed)

    async def confirm(self, key: str, result: Result) -> None:
        await self._settle(key, Status.done, result=result)

    async def claim_new(self, session: AsyncSession, keys: Sequence[str]) -> None:
        """Claim keys never used before (fresh ids), in the caller's transaction: the claim
        commits with the work that chose to perform the effects (notify's claim of a batch
        of messages), one statement for them all. A key that exists is a bug: it fails."""
        now = datetime.now(UTC)
        rows = [
            {
                "key": key,
                "status": Status.pending,
                "attempts": 1,
                "lease_until": now + self.lease,
                "result": None,
                "error": "",
                "created_at": now,
                "updated_at": now,
            }
            for key in keys
        ]
        if rows:
            await session.execute(self._table.insert(), rows)

    async def confirm_in(self, session: AsyncSession, key: str, result: Result) -> None:
        """:meth:`confirm` in the caller's transaction, so that the effect's outcome and
        what follows from it (messages marked sent) commit together."""
        await session.execute(
            update(self._table)
            .where(self._table.c.key == key)
            .values(status=Status.done, result=result, error="", updated_at=datetime.now(UTC))
        )

    async def forget(self, key: str, *, reason: str) -> None:
        """The provider certainly did nothing under ``key`` (it refused, or its records say it
        never received it): the next claim calls it anew."""
        await self._settle(key, Status.failed, error=reason)

    async def doubt(self, key: str, *, reason: str) -> None:
        """The call's outcome is unknown (a timeout): the next claim asks the provider first.
        For callers that drive :meth:`claim` and :meth:`confirm` themselves, as
        :meth:`perform` does inside."""
        await self._settle(key, Status.unknown, error=reason)

    async def status(self, key: str) -> tuple[Status, int] | None:
        """The key's status and attempts so far, if it was ever claimed."""
        table = self._table
        async with self._database.session() as session:
            row = (
                await session.execute(
                    select(table.c.status, table.c.attempts).where(table.c.key == key)
                )
            ).one_or_none()
        return None if row is None else (Status(row.status), int(row.attempts))

    async def _settle(
        self, key: str, status: Status, *, result: Result | None = None, error: str = ""
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "error": error[:2000],
            "updated_at": datetime.now(UTC),
        }
        if result is not None:
            values["result"] = result
        async with self._database.session() as session, session.begin():
            await session.execute(
                update(self._table).where(self._table.c.key == key).values(**values)
            )
