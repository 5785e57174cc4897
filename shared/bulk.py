"""What bulk work (ledger imports, result uploads: up to a million rows in one request)
needs from the kernel: inserts at COPY speed and a collector that stays out of the way."""

import gc
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, FromClause, Table, any_, bindparam, column, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.types import TypeEngine

from shared.db import insert_ignoring_duplicates


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction: a COPY on PostgreSQL (several times the
    rate of an executemany), an executemany elsewhere. Every row has the same keys; give
    every value, as Python-side column defaults (``default=new_id``) are not applied."""
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        await session.execute(table.insert(), rows)
        return
    driver = (await connection.get_raw_connection()).driver_connection
    assert isinstance(driver, asyncpg.Connection)
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter begins lazily, at the first statement it runs itself.
        await connection.exec_driver_sql("SELECT 1")
    columns = list(rows[0])
    records = _copy_records(connection.dialect, table, columns, rows)
    try:
        await driver.copy_records_to_table(
            table.name, records=records, columns=columns, schema_name=table.schema
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc


async def bulk_insert_new(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], *, key: str
) -> int:
    """Insert the rows whose unique ``key`` column is not taken yet (idempotent loads such as
    notify's ``enqueue``); return how many were new. On PostgreSQL the rows are COPYed into
    a temporary table and moved with one ``INSERT … SELECT … ON CONFLICT DO NOTHING``: COPY
    speed, and a duplicate is skipped rather than failing the batch. Same rules as
    :func:`bulk_insert` for the rows."""
    if not rows:
        return 0
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        # SQLite counts the rows each connection changed: the difference is what was new.
        before = (await session.execute(text("SELECT total_changes()"))).scalar_one()
        await session.execute(insert_ignoring_duplicates(table, connection.dialect.name), rows)
        after = (await session.execute(text("SELECT total_changes()"))).scalar_one()
        return int(after - before)
    driver = (await connection.get_raw_connection()).driver_connection
    assert isinstance(driver, asyncpg.Connection)
    columns = list(rows[0])
    staging = f"_new_{table.name}_{secrets.token_hex(4)}"
    listed = ", ".join(f'"{c}"' for c in columns)
    await connection.exec_driver_sql(
        f'CREATE TEMPORARY TABLE "{staging}" (LIKE "{table.name}") ON COMMIT DROP'
    )
    records = _copy_records(connection.dialect, table, columns, rows)
    await driver.copy_records_to_table(staging, records=records, columns=columns)
    moved = await connection.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({listed}) SELECT {listed} FROM "{staging}" '
        f'ON CONFLICT ("{key}") DO NOTHING'
    )
    await connection.exec_driver_sql(f'DROP TABLE "{staging}"')
    return int(moved.rowcount)


def _copy_records(
    dialect: Dialect, table: Table, columns: list[str], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """The rows as tuples, through each column type's bind processing (UtcDateTime's)."""
    pick = itemgetter(*columns)
    records = (
        [pick(row) for row in rows] if len(columns) > 1 else [(row[columns[0]],) for row in rows]
    )
    processors = [
        (index, processor)
        for index, column in enumerate(columns)
        if (processor := table.c[column].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    if not processors:
        return records
    processed = []
    for record in records:
        values = list(record)
        for index, processor in processors:
            values[index] = processor(values[index])
        processed.append(tuple(values))
    return processed


def among(
    column: ColumnElement[Any] | QueryableAttribute[Any], key: str, *, dialect: str
) -> ColumnElement[bool]:
    """``column IN :key``, the list given when the statement runs; on PostgreSQL written
    ``= ANY(:key)``, one array parameter rather than thousands, so the statement is prepared
    once and its plan reused. Build the statement once and run it for every batch: a new
    statement per batch makes reference cycles that would hold the lists until collected."""
    if dialect == "postgresql":
        return column == any_(bindparam(key, type_=ARRAY(column.type)))
    return column.in_(bindparam(key, expanding=True))


class Rows:
    """A batch of rows as the source of one statement (``INSERT … SELECT``, ``UPDATE … FROM``),
    for hot paths that write a few dozen rows at a time.

    On PostgreSQL the source is ``unnest`` of one array parameter per column: the statement
    is run once for the whole batch, where an executemany runs it once per row (and
    SQLAlchemy, the driver and the server each pay per row). Elsewhere it is a one-row
    ``SELECT`` of parameters, run per row. Build the statement once per dialect with
    :meth:`source`; give it :meth:`bind`'s parameters."""

    def __init__(self, name: str, columns: Mapping[str, TypeEngine[Any]]) -> None:
        self.name = name
        self.columns = dict(columns)
        # Named apart from any column: an UPDATE's SET reserves its columns' names.
        self._keys = {key: f"{name}_{key}" for key in self.columns}

    @classmethod
    def of(cls, table: Table, *, name: str) -> "Rows":
        """Rows of every column of ``table``."""
        return cls(name, {c.key: c.type for c in table.columns})

    def source(self, dialect: str) -> FromClause:
        if dialect == "postgresql":
            arrays = (bindparam(self._keys[k], type_=ARRAY(t)) for k, t in self.columns.items())
            return (
                func.unnest(*arrays)
                .table_valued(*(column(k, t) for k, t in self.columns.items()))
                .render_derived(name=self.name)
            )
        return select(
            *(bindparam(self._keys[k], type_=t).label(k) for k, t in self.columns.items())
        ).subquery(self.name)

    def bind(
        self, values: Mapping[str, Sequence[Any]], *, dialect: str
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """The parameters for a batch given column by column (every column, one length)."""
        if dialect == "postgresql":
            return {self._keys[k]: list(values[k]) for k in self.columns}
        keys = [self._keys[k] for k in self.columns]
        return [
            dict(zip(keys, row, strict=True))
            for row in zip(*(values[k] for k in self.columns), strict=True)
        ]


_pauses = 0
_resume = False


@contextmanager
def paused_gc() -> Iterator[Callable[[], None]]:
    """Pause the cyclic garbage collector during bulk work, for the whole process.

    CPython collects every few hundred new containers; bulk work makes millions that live
    for a batch, so the collector would rescan each batch and every long-lived object over
    and over (a third of an import's time). Yields a function to call between batches: at
    most once a second it collects what was made since, so cyclic garbage made meanwhile, by
    this work or by other requests, does not pile up. Pauses nest.
    """
    global _pauses, _resume
    if _pauses == 0:
        _resume = gc.isenabled()
        gc.disable()
    _pauses += 1
    try:
        yield _YoungCollector(interval=1.0)
    finally:
        _pauses -= 1
        if _pauses == 0 and _resume:
            gc.enable()


class _YoungCollector:
    def __init__(self, *, interval: float) -> None:
        self._interval = interval
        self._last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            gc.collect(0)
            self._last = now
