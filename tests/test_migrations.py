"""Each service's migrations build the schema its models describe: what ``alembic
autogenerate`` would find missing on a freshly migrated database (a table, a column, an
index, a type) is a drift that a deployment would run without, on both backends."""

import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from cordon.services import ALL
from shared.db import Database
from shared.migrations import upgrade
from shared.service import ServiceSpec
from shared.settings import Settings


def _drift(connection: Connection, spec: ServiceSpec) -> list[Any]:
    # The options the services' env.py migrates with (shared.migrations.run_migrations).
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, spec.metadata))


@pytest.mark.parametrize("spec", ALL, ids=[spec.name for spec in ALL])
async def test_a_migrated_database_has_what_the_models_describe(
    settings: Settings, spec: ServiceSpec
) -> None:
    schema = f"{settings.schema_prefix}{spec.name}_{uuid.uuid4().hex[:6]}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url or f"sqlite+aiosqlite:///{settings.data_dir / f'{schema}.db'}"
    database = Database(url=url, schema=schema)
    try:
        await upgrade(database, spec.migrations)
        async with database.engine.connect() as connection:
            drift = await connection.run_sync(_drift, spec)
        assert drift == [], f"{spec.name}: the models have what no migration made: {drift}"
    finally:
        if not database.is_sqlite:
            async with database.engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await database.dispose()
