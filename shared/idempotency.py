"""Stored answers of writes sent with an ``Idempotency-Key``: a retry with the same key gets
the first answer and changes nothing. The boundary (``shared.http``) stores a request's
answer in its own transaction; a group commit (``shared.desk``) stores the answers of its
keyed items in the group's transaction, with what they wrote."""

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Insert, Select, Table, select

from shared.bulk import Rows, among
from shared.uow import UnitOfWork


class Answer(Protocol):
    """What is stored of an answer (a Starlette ``Response`` is one)."""

    status_code: int
    media_type: str | None
    body: bytes | memoryview


class KeyedWrite:
    """A write sent with an ``Idempotency-Key``. Written in a group's transaction rather than
    its own, its answer is stored there (:meth:`answer`, :func:`store_answers`) and it is
    marked :attr:`stored`: the boundary then stores nothing. Unmarked (done alone after
    all), the boundary stores it as for any keyed write."""

    def __init__(self, *, principal: str, key: str, method: str, path: str, digest: str) -> None:
        self.principal = principal
        self.key = key
        self.method = method
        self.path = path
        self.digest = digest
        self.stored = False

    def answer(self, response: Answer) -> dict[str, Any]:
        """The row of the idempotency table that answers a retry with ``response``."""
        return {
            "principal": self.principal,
            "key": self.key,
            "method": self.method,
            "path": self.path,
            "request_hash": self.digest,
            "status_code": response.status_code,
            "content_type": response.media_type or "application/json",
            "body": bytes(response.body).decode(),
            "created_at": datetime.now(UTC),
        }


async def store_answers(
    uow: UnitOfWork, table: Table, shown: Sequence[tuple[KeyedWrite, Answer]]
) -> None:
    """Each write's answer as shown to its caller, in the unit of work's transaction, by one
    statement: a key stored before (a retry, or a concurrent request with it) makes this
    fail."""
    if not shown:
        return
    answers = [write.answer(response) for write, response in shown]
    rows = _rows(table)
    await uow.session.execute(
        _storing(table, uow.dialect),
        rows.bind({key: [a[key] for a in answers] for key in rows.columns}, dialect=uow.dialect),
    )


async def resent(uow: UnitOfWork, table: Table, writes: Sequence[KeyedWrite | None]) -> set[int]:
    """The positions of a group's writes that must go alone, where the boundary answers them
    as first answered: their key has a stored answer already (a retry), or an earlier write
    of the group sent it too. Writes without a key (``None``) never do."""
    keyed = [w for w in writes if w is not None]
    if not keyed:
        return set()
    rows = await uow.session.execute(
        _taken(table, uow.dialect), {"keys": list({k.key for k in keyed})}
    )
    taken = {(row.principal, row.key) for row in rows}
    alone: set[int] = set()
    for n, write in enumerate(writes):
        if write is None:
            continue
        pair = (write.principal, write.key)
        if pair in taken:
            alone.add(n)
        taken.add(pair)
    return alone


@cache
def _rows(table: Table) -> Rows:
    return Rows.of(table, name="answers")


@cache
def _storing(table: Table, dialect: str) -> Insert:
    """The insert of answers, built once per service."""
    source = _rows(table).source(dialect)
    return table.insert().from_select(list(source.c.keys()), select(*source.c))


@cache
def _taken(table: Table, dialect: str) -> Select[Any]:
    return select(table.c.principal, table.c.key).where(among(table.c.key, "keys", dialect=dialect))
