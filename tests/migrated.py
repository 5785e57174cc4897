"""Migrated databases for tests, made once per test process and copied for each test.

Running every service's Alembic chain for each of several hundred tests cost more than
half of the suite's time. The first test of a process migrates template databases (SQLite
files; PostgreSQL schemas, read back with ``pg_dump``); every later platform starts from a
copy. The migrations themselves still run, and tests that migrate on their own
(tests/test_topology.py, tests/test_cli.py) still exercise them."""

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from shared.db import Database
from shared.migrations import upgrade
from shared.service import ServiceSpec
from shared.settings import Settings


@dataclass
class _Templates:
    sqlite_dir: Path | None = None
    # Per service: the DDL of its migrated schema, with the schema's name as a placeholder.
    postgres: dict[str, str] = field(default_factory=dict)
    # Per service: the Alembic revisions its migrated schema is at.
    heads: dict[str, list[str]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_templates = _Templates()
PLACEHOLDER = f"cordontemplate{uuid.uuid4().hex[:8]}"


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _sqlite_template(specs: Sequence[ServiceSpec]) -> Path:
    if _templates.sqlite_dir is None:
        _templates.sqlite_dir = Path(tempfile.mkdtemp(prefix="cordon-migrated-"))
    for spec in specs:
        path = _templates.sqlite_dir / f"{spec.name}.db"
        if not path.exists():
            database = Database(url=f"sqlite+aiosqlite:///{path}", schema=spec.name)
            await upgrade(database, spec.migrations)
            await database.dispose()
    return _templates.sqlite_dir


async def _postgres_template(url: str, spec: ServiceSpec) -> str:
    if spec.name in _templates.postgres:
        return _templates.postgres[spec.name]
    schema = f"{PLACEHOLDER}_{spec.name}"
    database = Database(url=url, schema=schema)
    try:
        await upgrade(database, spec.migrations)
        versions = await _versions(url, schema)
        dump = await asyncio.to_thread(_dump_schema, url, schema)
    finally:
        await database.dispose()
        connection = await asyncpg.connect(_dsn(url))
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()
    # psql's meta-commands (\restrict …) are not SQL.
    lines = [line for line in dump.splitlines() if not line.startswith("\\")]
    inserts = [f"INSERT INTO \"{schema}\".alembic_version VALUES ('{v}');" for v in versions]
    script = "\n".join([*lines, *inserts]).replace(schema, f"{PLACEHOLDER}_SERVICE")
    _templates.postgres[spec.name] = script
    _templates.heads[spec.name] = sorted(versions)
    return script


async def _versions(url: str, schema: str) -> list[str]:
    connection = await asyncpg.connect(_dsn(url))
    try:
        rows = await connection.fetch(f'SELECT version_num FROM "{schema}".alembic_version')
    finally:
        await connection.close()
    return [row["version_num"] for row in rows]


def _dump_schema(url: str, schema: str) -> str:
    return subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-n", schema, _dsn(url)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    ).stdout


async def restore(settings: Settings, specs: Sequence[ServiceSpec]) -> None:
    """Give these services' databases their migrated tables, as ``cordon migrate`` would."""
    async with _templates.lock:
        if settings.database_url is None:
            source = await _sqlite_template(specs)
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            for spec in specs:
                shutil.copyfile(source / f"{spec.name}.db", settings.data_dir / f"{spec.name}.db")
            return
        url = settings.database_url
        scripts = {spec.name: await _postgres_template(url, spec) for spec in specs}
    kept = await _schemas_at_head(url, settings, [spec.name for spec in specs])
    await asyncio.gather(
        *(
            _run(url, script.replace(f"{PLACEHOLDER}_SERVICE", schema))
            for schema, script in ((settings.service_schema(n), s) for n, s in scripts.items())
            if schema not in kept
        )
    )


async def _schemas_at_head(url: str, settings: Settings, services: Sequence[str]) -> set[str]:
    """The schemas (kept from an earlier test of this process) already at their template's
    revisions, with their tables as migrated."""
    connection = await asyncpg.connect(_dsn(url))
    try:
        kept = set()
        for service in services:
            schema = settings.service_schema(service)
            if await _at_head(connection, schema, _templates.heads.get(service)):
                kept.add(schema)
        return kept
    finally:
        await connection.close()


async def _at_head(connection: asyncpg.Connection, schema: str, heads: list[str] | None) -> bool:
    if heads is None or not await connection.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f'"{schema}".alembic_version'
    ):
        return False
    rows = await connection.fetch(f'SELECT version_num FROM "{schema}".alembic_version')
    return sorted(row["version_num"] for row in rows) == heads


async def empty(settings: Settings, specs: Sequence[ServiceSpec]) -> None:
    """Empty these services' schemas for the next test of this process, keeping their tables:
    far cheaper than dropping them and replaying the DDL. A schema a test left at another
    revision (it migrated up or down by itself) is dropped, and made anew by :func:`restore`."""
    assert settings.database_url is not None
    connection = await asyncpg.connect(_dsn(settings.database_url))
    try:
        for spec in specs:
            schema = settings.service_schema(spec.name)
            if not await _at_head(connection, schema, _templates.heads.get(spec.name)):
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                continue
            await connection.execute(await _emptying(connection, schema))
    finally:
        await connection.close()


async def _emptying(connection: asyncpg.Connection, schema: str) -> str:
    tables = await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'alembic_version'",
        schema,
    )
    sequences = await connection.fetch(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = $1", schema
    )
    # Triggers off (foreign keys among them) for the deletes, so their order doesn't matter.
    return ";".join(
        [
            "SET session_replication_role = replica",
            *(f'DELETE FROM "{schema}"."{row["tablename"]}"' for row in tables),
            *(f'ALTER SEQUENCE "{schema}"."{row["sequencename"]}" RESTART' for row in sequences),
            "SET session_replication_role = DEFAULT",
        ]
    )


async def _run(url: str, script: str) -> None:
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.execute(script)
    finally:
        await connection.close()
