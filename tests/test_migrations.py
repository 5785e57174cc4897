"""Each service's migrations build the schema its models describe: what ``alembic
autogenerate`` would find missing on a freshly migrated database (a table, a column, an
index, a type) is a drift that a deployment would run without, on both backends."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert, select, text

from cordon.services import ALL
from services.logistics.models import Recurrence
from services.notify.models import RuleSetting, Template
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


async def test_a_towns_own_request_templates_show_the_kind_as_a_word_after_upgrading(
    settings: Settings,
) -> None:
    """Versions a town wrote before the glossary typed a request's kind as a plain ``str``,
    which shows the code (``medicine_run``) in a Chinese text: the upgrade retypes it where a
    request rule fills the template, and leaves a template no such rule uses as it was."""
    [notify] = [spec for spec in ALL if spec.name == "notify"]
    schema = f"{settings.schema_prefix}notify_{uuid.uuid4().hex[:6]}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url or f"sqlite+aiosqlite:///{settings.data_dir / f'{schema}.db'}"
    database = Database(url=url, schema=schema)
    town, other_town = uuid.uuid4(), uuid.uuid4()
    typed_as_str = {"request": "str", "area": "str", "due": "datetime"}
    rows = {
        # The rule's own template, edited by the town.
        "edited": (town, "request_overdue", 2, typed_as_str),
        # A template of the town's own that no rule uses: its request is free text.
        "own": (town, "errand_notice", 1, {"request": "str"}),
        # The same key in a town whose request_done rule was given it.
        "chosen": (other_town, "errand_notice", 1, {"request": "str"}),
    }
    try:
        await upgrade(database, notify.migrations, revision="0003_messaging")
        async with database.engine.begin() as connection:
            for name, (town_id, key, version, variables) in rows.items():
                await connection.execute(
                    insert(Template.__table__).values(
                        id=uuid.uuid4(),
                        town_id=town_id,
                        key=key,
                        version=version,
                        description=name,
                        variables=variables,
                        texts={"zh-CN": "{request}"},
                        created_by="operator",
                        created_at=datetime.now(UTC),
                    )
                )
            await connection.execute(
                insert(RuleSetting.__table__).values(
                    id=uuid.uuid4(),
                    town_id=other_town,
                    rule="request_done",
                    enabled=True,
                    template_key="errand_notice",
                    updated_by="operator",
                    updated_at=datetime.now(UTC),
                )
            )
        await upgrade(database, notify.migrations)
        async with database.engine.connect() as connection:
            table = Template.__table__
            found = await connection.execute(select(table.c.description, table.c.variables))
            requests = {name: variables["request"] for name, variables in found.all()}
        assert requests == {"edited": "request_kind", "own": "str", "chosen": "request_kind"}
    finally:
        if not database.is_sqlite:
            async with database.engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await database.dispose()


async def test_recurring_trips_entered_twice_before_upgrading_are_made_once_after(
    settings: Settings,
) -> None:
    """A series entered twice before one active series per resident, kind, days and time
    was enforced keeps its first entry active; the later one is stopped (its trips stay)."""
    [logistics] = [spec for spec in ALL if spec.name == "logistics"]
    schema = f"{settings.schema_prefix}logistics_{uuid.uuid4().hex[:6]}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url or f"sqlite+aiosqlite:///{settings.data_dir / f'{schema}.db'}"
    database = Database(url=url, schema=schema)
    resident, town = uuid.uuid4(), uuid.uuid4()
    entered = {
        "first": (["mon", "wed", "fri"], True, 1),
        "double click": (["fri", "mon", "wed"], True, 2),
        "stopped before": (["mon", "wed", "fri"], False, 3),
        "tuesdays": (["tue"], True, 4),
    }
    try:
        await upgrade(database, logistics.migrations, revision="0009_cancelled_households")
        async with database.engine.begin() as connection:
            for details, (days, active, minute) in entered.items():
                await connection.execute(
                    insert(Recurrence.__table__).values(
                        id=uuid.uuid4(),
                        resident_id=resident,
                        town_id=town,
                        kind="medical_transport",
                        reason="dialysis",
                        details=details,
                        weekdays=days,
                        at_time="07:30",
                        starts_on=datetime(2026, 12, 7).date(),
                        active=active,
                        created_by="operator",
                        created_at=datetime(2026, 12, 6, 21, minute, tzinfo=UTC),
                    )
                )
        await upgrade(database, logistics.migrations)
        async with database.engine.connect() as connection:
            table = Recurrence.__table__
            found = await connection.execute(
                select(table.c.details, table.c.weekdays_key, table.c.active)
            )
            after = {details: (key, bool(active)) for details, key, active in found.all()}
        assert after == {
            "first": ("mon,wed,fri", True),
            "double click": ("mon,wed,fri", False),
            "stopped before": ("mon,wed,fri", False),
            "tuesdays": ("tue", True),
        }
    finally:
        if not database.is_sqlite:
            async with database.engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await database.dispose()


async def test_stored_tube_codes_are_upper_cased_unless_another_case_of_them_is_stored(
    settings: Settings,
) -> None:
    """Codes enter in upper case now: the upgrade upper-cases the codes stored before, so a
    label finds its tube, and leaves alone a code stored twice in two cases (two tubes,
    which one upper code cannot name)."""
    from services.testing.models import Round, Tube

    [testing] = [spec for spec in ALL if spec.name == "testing"]
    schema = f"{settings.schema_prefix}testing_{uuid.uuid4().hex[:6]}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url or f"sqlite+aiosqlite:///{settings.data_dir / f'{schema}.db'}"
    database = Database(url=url, schema=schema)
    now, town, round_id = datetime.now(UTC), uuid.uuid4(), uuid.uuid4()
    codes = ["ab-0001", "Cd-0002", "CD-0002", "EF-0003"]
    try:
        await upgrade(database, testing.migrations, revision="0009_member_indexes")
        async with database.engine.begin() as connection:
            await connection.execute(
                insert(Round.__table__).values(
                    id=round_id,
                    name="Night round",
                    kind="pcr",
                    status="open",
                    scope={"kind": "town", "ids": []},
                    starts_at=now,
                    ends_at=now,
                    pool_size=10,
                    created_by="operator",
                    created_at=now,
                    town_id=town,
                )
            )
            for code in codes:
                await connection.execute(
                    insert(Tube.__table__).values(
                        id=uuid.uuid4(),
                        round_id=round_id,
                        code=code,
                        pooled=False,
                        retest=False,
                        size=1,
                        collector="Nurse Li",
                        collected_at=now,
                        recorded_by="operator",
                        status="collected",
                        town_id=town,
                    )
                )
        await upgrade(database, testing.migrations)
        async with database.engine.connect() as connection:
            stored = await connection.scalars(select(Tube.__table__.c.code))
            assert sorted(stored) == ["AB-0001", "CD-0002", "Cd-0002", "EF-0003"]
    finally:
        if not database.is_sqlite:
            async with database.engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await database.dispose()
