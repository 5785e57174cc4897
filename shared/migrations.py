"""Alembic per service: each service keeps its own migrations folder, and its tables live
in its own PostgreSQL schema (or SQLite file). The service's ``env.py`` calls
:func:`run_migrations`; processes call :func:`upgrade` at start."""

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text

from shared.db import Database, UtcDateTime


def _config(location: Path, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


async def upgrade(database: Database, location: Path, revision: str = "head") -> None:
    """Migrate to ``revision`` (the newest by default; tests of a data migration stop
    before it)."""
    if not database.is_sqlite:
        async with database.engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"'))
    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade, location, revision)


def _upgrade(connection: Connection, location: Path, revision: str) -> None:
    command.upgrade(_config(location, connection), revision)


async def autogenerate(database: Database, location: Path, message: str) -> None:
    """Write a new revision with what the models have that the database lacks."""
    await upgrade(database, location)
    async with database.engine.begin() as connection:
        await connection.run_sync(_revision, location, message)


def _revision(connection: Connection, location: Path, message: str) -> None:
    command.revision(_config(location, connection), message=message, autogenerate=True)


def run_migrations(metadata: MetaData) -> None:
    """Body of a service's ``env.py``: migrate on the connection the caller handed over."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `cordon migrate`, which supplies the database")
    options: dict[str, Any] = {
        "connection": connection,
        "target_metadata": metadata,
        "compare_type": True,
        # SQLite alters tables by copying them; Alembic's batch mode does that.
        "render_as_batch": connection.dialect.name == "sqlite",
    }
    context.configure(**options)
    with context.begin_transaction():
        context.run_migrations()


def store_outbox_uncompressed(*, undo: bool = False) -> None:
    """For a service's migration: outbox bodies live until the relay publishes them, and a
    bulk event carries megabytes, which PostgreSQL would compress (pglz) for nothing; that
    was a third of the database's work in a ledger import."""
    if op.get_bind().dialect.name == "postgresql":
        storage = "EXTENDED" if undo else "EXTERNAL"
        op.execute(f"ALTER TABLE outbox ALTER COLUMN body SET STORAGE {storage}")


def add_effects_and_scheduling(*, undo: bool = False) -> None:
    """For a service's migration: the outbox's ``deliver_at`` and ``urgent`` columns and the
    ``effects`` ledger (kernel tables, the same in every service)."""
    if undo:
        op.drop_table("effects")
        with op.batch_alter_table("outbox") as batch:
            batch.drop_column("urgent")
            batch.drop_column("deliver_at")
        return
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("deliver_at", UtcDateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "effects",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", UtcDateTime(timezone=True), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_effects")),
    )


def outbox_positions_never_reused(*, undo: bool = False) -> None:
    """For a service's migration: the outbox's ``seq`` is the event's position in the
    service's stream. PostgreSQL's sequence never hands a number out twice; SQLite reuses the
    highest rowid once the relay has emptied the table, unless the table says AUTOINCREMENT."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "outbox", recreate="always", table_kwargs={"sqlite_autoincrement": not undo}
    ):
        pass


def add_committee_column(tables: list[str], *, undo: bool = False) -> None:
    """For a service's migration: the committee level of :class:`~shared.authz.Scoped`
    (issue 7) on tables that lacked it; nullable, so no table is copied, on SQLite either."""
    for table in tables:
        if undo:
            op.drop_index(f"ix_{table}_committee_id", table_name=table)
            with op.batch_alter_table(table) as batch:
                batch.drop_column("committee_id")
        else:
            op.add_column(table, sa.Column("committee_id", sa.Uuid(), nullable=True))
            op.create_index(f"ix_{table}_committee_id", table, ["committee_id"])


def add_directory_contacts(*, undo: bool = False) -> None:
    """For a service's migration: what the directory keeps to reach people (issues 10, 11):
    a resident's language and opt-out, a volunteer's skills and availability."""
    if undo:
        with op.batch_alter_table("directory_people") as batch:
            batch.drop_column("availability")
            batch.drop_column("skills")
        with op.batch_alter_table("directory_residents") as batch:
            batch.drop_column("opted_out")
            batch.drop_column("language")
        return
    op.add_column(
        "directory_residents",
        sa.Column("language", sa.String(5), nullable=False, server_default="zh-CN"),
    )
    op.add_column(
        "directory_residents",
        sa.Column("opted_out", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "directory_people", sa.Column("skills", sa.JSON(), nullable=False, server_default="[]")
    )
    op.add_column(
        "directory_people",
        sa.Column("availability", sa.String(200), nullable=False, server_default=""),
    )
