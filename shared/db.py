"""Databases: one per service (a PostgreSQL schema or a SQLite file), and the kernel's tables.

Every service's metadata gets the same kernel tables (outbox, inbox, idempotency keys,
access log, effects) through :func:`define_kernel_tables`, so the outbox row and the business change
always live in the same database and commit together.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    event,
    false,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A SELECT of any columns (SQLAlchemy 2.1 types the selected columns).
AnySelect = Select[*tuple[Any, ...]]

# SQLite has no BIGINT rowid alias; INTEGER PRIMARY KEY autoincrements there.
SequenceInt = BigInteger().with_variant(Integer(), "sqlite")


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite hands back naive ones otherwise). A naive
    value is taken as UTC on every backend: asyncpg would read it as the process's local
    time, SQLite as UTC. (The API refuses naive times: ``shared.fields.Moment``.)"""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utc_datetime() -> UtcDateTime:
    return UtcDateTime()


@dataclass(frozen=True)
class KernelTables:
    outbox: Table
    inbox: Table
    idempotency: Table
    access_log: Table
    effects: Table


def define_kernel_tables(metadata: MetaData) -> KernelTables:
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", SequenceInt, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("routing_key", String(120), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", utc_datetime(), nullable=False),
        # Not published before this time (quiet hours, SLA timers); none: at once.
        Column("deliver_at", utc_datetime(), nullable=True),
        # Published to the consumers' urgent lane, ahead of their bulk backlog.
        Column("urgent", Boolean, nullable=False, server_default=false()),
        # ``seq`` is the event's position in the service's stream: never reused, even on
        # SQLite once the relay has emptied the table.
        sqlite_autoincrement=True,
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(120), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("processed_at", utc_datetime(), nullable=False),
    )
    idempotency = Table(
        "idempotency_keys",
        metadata,
        Column("principal", String(80), primary_key=True),
        Column("key", String(200), primary_key=True),
        Column("method", String(10), nullable=False),
        Column("path", String(500), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("content_type", String(100), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", utc_datetime(), nullable=False),
    )
    access_log = Table(
        "access_log",
        metadata,
        Column("id", SequenceInt, primary_key=True, autoincrement=True),
        Column("at", utc_datetime(), nullable=False),
        Column("principal_id", String(80), nullable=False),
        Column("role", String(40), nullable=False),
        Column("resource", String(60), nullable=False),
        Column("record_ids", JSON, nullable=False),
        Column("fields", String(200), nullable=False),
        Column("endpoint", String(500), nullable=False),
        Column("correlation_id", String(80), nullable=False),
        Index("ix_access_log_principal_at", "principal_id", "at"),
    )
    return KernelTables(
        outbox=outbox,
        inbox=inbox,
        idempotency=idempotency,
        access_log=access_log,
        effects=define_effects_table(metadata),
    )


def define_effects_table(metadata: MetaData) -> Table:
    """The ledger of external effects (``shared.effects``): one row per idempotency key."""
    return Table(
        "effects",
        metadata,
        Column("key", String(200), primary_key=True),
        # pending (being performed) | unknown (outcome to reconcile) | done | failed
        Column("status", String(20), nullable=False),
        Column("attempts", Integer, nullable=False),
        # A pending claim older than this was abandoned (a crash): its outcome is unknown.
        Column("lease_until", utc_datetime(), nullable=False),
        Column("result", JSON, nullable=True),
        Column("error", Text, nullable=False),
        Column("created_at", utc_datetime(), nullable=False),
        Column("updated_at", utc_datetime(), nullable=False),
    )


def insert_ignoring_duplicates(table: Table, dialect_name: str) -> Insert:
    """An INSERT that silently skips rows whose key already exists (inbox, idempotent loads)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def upsert(
    table: Table, dialect_name: str, *, key: Sequence[str], newer: str | None = None
) -> Insert:
    """An INSERT that overwrites the other columns of a row whose ``key`` exists (projections
    fed by events, where the latest state wins); with ``newer``, only when the new row's
    value in that column is higher (events applied out of order)."""
    statement = (postgresql if dialect_name == "postgresql" else sqlite).insert(table)
    changed = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in key}
    where = None if newer is None else table.c[newer] < statement.excluded[newer]
    return statement.on_conflict_do_update(index_elements=list(key), set_=changed, where=where)


class Database:
    """One service's database: a PostgreSQL schema, or a SQLite file in the embedded mode."""

    def __init__(
        self, *, url: str, schema: str, pool_size: int = 20, synchronous: str | None = None
    ) -> None:
        """``synchronous`` overrides :data:`SQLITE_SYNCHRONOUS` for a SQLite file, for work
        whose loss in a power cut is harmless (the embedded bus settling handled messages)."""
        self._synchronous = synchronous
        self.url = url
        self.schema = schema
        self.is_sqlite = url.startswith("sqlite")
        self.engine = self._create_engine(pool_size)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _create_engine(self, pool_size: int) -> AsyncEngine:
        if self.is_sqlite:
            engine = create_async_engine(self.url, connect_args={"timeout": 60})
            _serialise_sqlite_writers(engine, synchronous=self._synchronous or SQLITE_SYNCHRONOUS)
            return engine
        # The schema in the application name tells an operator whose connection it is.
        name = f"cordon:{self.schema}"[:63]
        connect_args: dict[str, Any] = {
            "server_settings": {"search_path": self.schema, "application_name": name}
        }
        # No pre-ping: it costs a round trip on every checkout. A connection found dead in
        # use invalidates the whole pool (SQLAlchemy's disconnect handling), so after a
        # database restart only the requests then in flight fail, with a 503 to retry.
        # Every connection it opens is kept (no overflow): under a steady 16 requests in
        # flight, overflow connections were opened and closed again all the time (a
        # connection costs several round trips); the most a process holds is unchanged.
        return create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=0,
            connect_args=connect_args,
        )

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    async def dispose(self) -> None:
        await self.engine.dispose()


def _terminate_at_once(self: AsyncAdapt_aiosqlite_connection) -> None:
    """Close a connection SQLAlchemy gives up on (work cancelled mid-statement) by stopping
    its thread, without first trying aiosqlite's ``close()``: that close, cancelled again (a
    process shutting down cancels what is left), re-queues a stop behind the forced one and
    waits for ever on a thread that has ended, and so does the process's exit. SQLite rolls
    back what the connection had not committed, as on a crash."""
    self._terminate_force_close()


AsyncAdapt_aiosqlite_connection.terminate = _terminate_at_once  # type: ignore[method-assign,assignment]


# What the API acknowledged must survive a power loss: in WAL mode, NORMAL syncs only at
# checkpoints, so the last commits before a crash of the machine can vanish; FULL syncs the
# log on every commit (see docs/architecture.md for what it costs).
SQLITE_SYNCHRONOUS = "FULL"


def _serialise_sqlite_writers(engine: AsyncEngine, *, synchronous: str) -> None:
    """SQLite allows one writer: take the write lock at BEGIN so two transactions never
    deadlock upgrading their read locks, and wait for it instead of failing. Every
    connection commits durably (:data:`SQLITE_SYNCHRONOUS`)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def as_uuid(value: str | uuid.UUID) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def table_of(model: type[Any]) -> Table:
    """The Core table of a mapped class, for bulk statements."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index of the rows ``where`` holds, on PostgreSQL and SQLite alike: a queue's waiting
    rows only, or uniqueness where a plain unique constraint would let rows with an empty
    column repeat (the whole building's zone beside its units')."""
    return Index(
        name, *columns, unique=unique, postgresql_where=text(where), sqlite_where=text(where)
    )
