"""The dispatcher's named queries on ``messages``: claims under ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL (replicas never take the same message; on SQLite one writer at a time), and
set-based state changes guarded by the state they expect, so a late writer changes nothing."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, select, text, update

from services.notify.models import GatewaySwitch, Message, MessageState
from shared.bulk import among
from shared.db import table_of
from shared.uow import UnitOfWork

messages = table_of(Message)
DUE_COLUMNS = (
    messages.c.id,
    messages.c.phone,
    messages.c.text,
    messages.c.segments,
    messages.c.rank,
    messages.c.state,
    messages.c.valid_until,
    messages.c.town_id,
    messages.c.template_key,
    messages.c.attempts,
    messages.c.batch_id,
    messages.c.gateway,
)
OUTCOME_COLUMNS = (
    messages.c.id,
    messages.c.cause_kind,
    messages.c.cause_id,
    messages.c.broadcast_id,
    messages.c.recipient_kind,
    messages.c.recipient_id,
    messages.c.template_key,
    messages.c.town_id,
)


# Written out, not bound: only a literal predicate lets PostgreSQL use the partial index.
WAITING = text("messages.state IN ('queued', 'deferred')")
UNKNOWN = text("messages.state = 'unknown'")


async def due(
    uow: UnitOfWork, *, waiting: bool, now: datetime, limit: int
) -> list[Row[*tuple[Any, ...]]]:
    """Waiting (queued or deferred) or else ``unknown`` messages whose time has come, urgent
    first, then oldest; locked for this transaction and skipped by other replicas' claims."""
    state = WAITING if waiting else UNKNOWN
    query = (
        select(*DUE_COLUMNS)
        .where(state, messages.c.next_attempt_at <= now)
        .order_by(messages.c.rank, messages.c.next_attempt_at)
        .limit(limit)
    )
    if uow.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list((await uow.session.execute(query)).all())


async def change(
    uow: UnitOfWork,
    ids: Sequence[uuid.UUID],
    *,
    expect: Iterable[MessageState] | None = None,
    **values: Any,
) -> int:
    """Set ``values`` on these messages (only those still in an ``expect`` state)."""
    if not ids:
        return 0
    statement = update(messages).where(among(messages.c.id, "ids", dialect=uow.dialect))
    if expect is not None:
        statement = statement.where(messages.c.state.in_([s.value for s in expect]))
    result = await uow.session.execute(statement.values(**values), {"ids": list(ids)})
    return int(result.rowcount)  # type: ignore[attr-defined]


async def flush_lazily(uow: UnitOfWork) -> None:
    """Let this transaction's commit return before its WAL reaches the disk (PostgreSQL;
    SQLite has no such setting). Only for recording what a gateway answered: the claim that
    preceded the call (messages ``sending`` under their ledger entry) committed durably, so
    if the database loses this commit in a crash the messages are still ``sending`` and,
    once their lease runs out, are reconciled with the gateway — sent once, never twice."""
    if uow.dialect == "postgresql":
        await uow.session.execute(text("SET LOCAL synchronous_commit TO OFF"))


async def claim_batches(
    uow: UnitOfWork,
    batches: dict[uuid.UUID, Sequence[uuid.UUID]],
    *,
    expect: Iterable[MessageState],
    gateway: str,
    lease_until: datetime,
    now: datetime,
) -> int:
    """These waiting messages are ``sending`` in their batches through ``gateway`` (one
    statement on PostgreSQL however many batches)."""
    if not batches:
        return 0
    if uow.dialect != "postgresql":
        changed = 0
        for batch_id, ids in batches.items():
            changed += await change(
                uow,
                ids,
                expect=expect,
                state=MessageState.sending.value,
                batch_id=batch_id,
                gateway=gateway,
                lease_until=lease_until,
                attempts=messages.c.attempts + 1,
                updated_at=now,
            )
        return changed
    ids = [message_id for members in batches.values() for message_id in members]
    batch_ids = [batch_id for batch_id, members in batches.items() for _ in members]
    result = await uow.session.execute(
        text(
            "UPDATE messages SET state = 'sending', batch_id = v.batch_id, gateway = :gateway, "
            "lease_until = :lease, attempts = messages.attempts + 1, updated_at = :now "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:batches AS uuid[])) AS v(id, batch_id) "
            "WHERE messages.id = v.id AND messages.state = ANY(CAST(:expect AS text[]))"
        ),
        {
            "ids": ids,
            "batches": batch_ids,
            "gateway": gateway,
            "lease": lease_until,
            "now": now,
            "expect": [state.value for state in expect],
        },
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def mark_sent(uow: UnitOfWork, *, sent: dict[uuid.UUID, str], now: datetime) -> int:
    """These messages are sent, each with the provider's id (one statement on PostgreSQL)."""
    if not sent:
        return 0
    if uow.dialect == "postgresql":
        result = await uow.session.execute(
            text(
                "UPDATE messages SET state = 'sent', provider_message_id = v.pid, "
                "sent_at = :now, updated_at = :now, lease_until = NULL "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:pids AS text[])) AS v(id, pid) "
                "WHERE messages.id = v.id AND messages.state = 'sending'"
            ),
            {"ids": list(sent), "pids": list(sent.values()), "now": now},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
    statement = (
        update(messages)
        .where(messages.c.id == bindparam("b_id"), messages.c.state == MessageState.sending.value)
        .values(
            state=MessageState.sent.value,
            provider_message_id=bindparam("b_pid"),
            sent_at=now,
            updated_at=now,
            lease_until=None,
        )
    )
    rows = [{"b_id": message_id, "b_pid": pid} for message_id, pid in sent.items()]
    result = await uow.session.execute(statement, rows)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def in_batch(
    uow: UnitOfWork, *, batch_id: uuid.UUID, phones: Sequence[str] | None = None
) -> list[Row[*tuple[Any, ...]]]:
    """The batch's messages still being sent (of these phones), as their causes know them."""
    query = select(*OUTCOME_COLUMNS, messages.c.phone).where(
        messages.c.batch_id == batch_id, messages.c.state == MessageState.sending.value
    )
    if phones is not None:
        query = query.where(messages.c.phone.in_(list(phones)))
    return list((await uow.session.execute(query)).all())


async def expire_overdue(uow: UnitOfWork, *, now: datetime) -> int:
    """Unsent messages past their validity expire; they are never sent."""
    result = await uow.session.execute(
        update(messages)
        .where(
            messages.c.state.in_([MessageState.queued.value, MessageState.deferred.value]),
            messages.c.valid_until <= now,
        )
        .values(state=MessageState.expired.value, updated_at=now, error="validity ended")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def abandoned(uow: UnitOfWork, *, now: datetime) -> int:
    """Claims whose lease ran out (their worker died): their outcome is unknown until the
    batch is reconciled with the gateway."""
    result = await uow.session.execute(
        update(messages)
        .where(and_(text("messages.state = 'sending'"), messages.c.lease_until < now))
        .values(
            state=MessageState.unknown.value,
            next_attempt_at=now,
            updated_at=now,
            error="claim abandoned; reconciling",
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def settle_receipt(
    uow: UnitOfWork,
    *,
    batch_id: uuid.UUID,
    phone: str,
    state: MessageState,
    at: datetime,
    error: str | None,
) -> Row[*tuple[Any, ...]] | None:
    """Apply one receipt: a message not yet final becomes delivered or failed; anything
    already final (a duplicate, an out-of-order receipt) is left as it is."""
    open_states = [MessageState.sending.value, MessageState.unknown.value, MessageState.sent.value]
    values: dict[str, Any] = {"state": state.value, "updated_at": at, "lease_until": None}
    if state is MessageState.delivered:
        values["delivered_at"] = at
    else:
        values["error"] = error
    result = await uow.session.execute(
        update(messages)
        .where(
            messages.c.batch_id == batch_id,
            messages.c.phone == phone,
            messages.c.state.in_(open_states),
        )
        .values(**values)
        .returning(*OUTCOME_COLUMNS)
    )
    return result.first()


async def latest_switches(uow: UnitOfWork, *, limit: int) -> list[GatewaySwitch]:
    """The gateways' latest failover switches, newest first."""
    query = select(GatewaySwitch).order_by(GatewaySwitch.at.desc()).limit(limit)
    return list(await uow.session.scalars(query))
