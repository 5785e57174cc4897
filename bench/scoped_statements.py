"""What the caller's scope costs a statement: one row read through a scoped session, on PostgreSQL.

Every query on placed data is filtered by the caller's scope in one place
(``shared.authz``): ORM queries by loader criteria, Core statements by adding the scope's
condition to each placed table they read. An endpoint builds most of its statements per
call, so the rewriting is paid per statement. This times, in CPU of this process per
statement (the figure other work on the machine blurs least):

- a Core statement built per call, scoped and unscoped;
- the same statement built once (a hot path's: scoped once per scope, then remembered);
- an ORM query of the entity, scoped and unscoped;
- the raw ceiling: asyncpg's prepared statement fetching the same row.

    .venv/bin/python -m bench.scoped_statements [--rows 10000] [--statements 3000]

Goal: scoping a statement built per call costs no more than the statement itself does
unscoped (ratio scoped : unscoped <= 2).
"""

import argparse
import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import String, bindparam, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bench import _pg
from shared.auth import Scope, ScopeKind
from shared.authz import SCOPE_KEY, UNSCOPED, Scoped
from shared.db import Database, table_of

GOAL_RATIO = 2.0


class _Base(DeclarativeBase):
    pass


class Parcel(Scoped, _Base):
    """A placed row like any of the services' (a resident, a tube): its place and a code."""

    __tablename__ = "parcels"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)


parcels = table_of(Parcel)


async def _cpu_per_call(call: Callable[[], Awaitable[object]], *, times: int) -> float:
    """Milliseconds of this process's CPU per call, after a warm-up."""
    for _ in range(min(200, times)):
        await call()
    started = time.process_time()
    for _ in range(times):
        await call()
    return (time.process_time() - started) / times * 1000


async def run(*, url: str, rows: int, statements: int, report: bool = True) -> dict[str, float]:
    schema = f"bench_scoped_{uuid.uuid4().hex[:8]}"
    town, committee = uuid.uuid4(), uuid.uuid4()
    compounds = [uuid.uuid4() for _ in range(10)]
    rng = random.Random(7)
    records = [
        (uuid.uuid4(), f"P{n:07d}", town, committee, rng.choice(compounds), None)
        for n in range(rows)
    ]
    say = print if report else (lambda *_: None)
    async with _pg.connection(url) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    database = Database(url=url, schema=schema, pool_size=2)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_Base.metadata.create_all)
        async with _pg.connection(url, schema=schema) as conn:
            columns = ["id", "code", "town_id", "committee_id", "compound_id", "building_id"]
            await _pg.copy(conn, "parcels", columns, records)
            await conn.execute("ANALYZE parcels")
            mine = [r for r in records if r[4] == compounds[0]]
            codes = [r[1] for r in mine]
            prepared = await conn.prepare("SELECT * FROM parcels WHERE code = $1")
            n = 0

            async def raw() -> object:
                nonlocal n
                n += 1
                return await prepared.fetchrow(codes[n % len(codes)])

            figures = {"raw asyncpg": await _cpu_per_call(raw, times=statements)}
        figures |= await _scoped(database, codes, town, committee, compounds[0], statements)
    finally:
        await database.dispose()
        await _pg.drop_schemas(url, schema)
    _report(say, figures, rows=rows, statements=statements)
    return figures


async def _scoped(
    database: Database,
    codes: list[str],
    town: uuid.UUID,
    committee: uuid.UUID,
    compound: uuid.UUID,
    statements: int,
) -> dict[str, float]:
    # A committee's staff member who manages one compound: the common scope of a request.
    scope = Scope.of(
        ScopeKind.committees, towns=[town], committees=[committee], compounds=[compound]
    )
    prebuilt = select(parcels).where(parcels.c.code == bindparam("code"))
    n = 0

    def code() -> str:
        nonlocal n
        n += 1
        return codes[n % len(codes)]

    figures: dict[str, float] = {}
    async with database.session() as session:
        session.info[SCOPE_KEY] = scope
        variants: dict[str, Callable[[], Any]] = {
            "Core, built per call, scoped": lambda: select(parcels).where(parcels.c.code == code()),
            "Core, built per call, unscoped": lambda: (
                select(parcels).where(parcels.c.code == code()).execution_options(**UNSCOPED)
            ),
            "ORM entity, scoped": lambda: select(Parcel).where(Parcel.code == code()),
            "ORM entity, unscoped": lambda: (
                select(Parcel).where(Parcel.code == code()).execution_options(**UNSCOPED)
            ),
        }
        for name, build in variants.items():

            async def read(build: Callable[[], Any] = build) -> object:
                return (await session.execute(build())).first()

            figures[name] = await _cpu_per_call(read, times=statements)

        async def hot() -> object:
            return (await session.execute(prebuilt, {"code": code()})).first()

        figures["Core, built once, scoped"] = await _cpu_per_call(hot, times=statements)
        # What the scope hides: a row of another compound is not found.
        other = await session.execute(select(parcels.c.id).where(parcels.c.compound_id != compound))
        assert other.first() is None, "the scope let another compound's row through"
    return figures


def _report(say: Any, figures: dict[str, float], *, rows: int, statements: int) -> None:
    raw = figures["raw asyncpg"]
    say(
        f"one row of {rows:,} read by code, {statements:,} statements each; CPU of this process "
        "per statement (goal: scoping a statement built per call costs at most "
        f"{GOAL_RATIO:.0f}x the same statement unscoped):"
    )
    for name, ms in figures.items():
        say(f"  {name:34s} {ms:6.3f} ms  {1 / ms * 1000:8,.0f} statements/s  {ms / raw:5.1f}x raw")
    for kind in ("Core, built per call", "ORM entity"):
        ratio = figures[f"{kind}, scoped"] / figures[f"{kind}, unscoped"]
        verdict = "ok" if ratio <= GOAL_RATIO else f"MISSED at <= {GOAL_RATIO:.0f}"
        say(f"  {kind}: scoped : unscoped = {ratio:.2f} [{verdict}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("CORDON_BENCH_DATABASE_URL", _pg.DEFAULT_URL)
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--statements", type=int, default=3_000)
    args = parser.parse_args()
    asyncio.run(run(url=args.url, rows=args.rows, statements=args.statements))


if __name__ == "__main__":
    main()
