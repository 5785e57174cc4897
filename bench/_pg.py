"""PostgreSQL for benchmarks: a throw-away schema, and the raw ceilings to compare with
(COPY into an unindexed table, SELECT round trips) measured on the same server in the same
run."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as asyncpg takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def connection(url: str, *, schema: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    settings = {"search_path": schema} if schema else {}
    conn = await asyncpg.connect(asyncpg_dsn(url), server_settings=settings)
    try:
        yield conn
    finally:
        await conn.close()


async def drop_schemas(url: str, prefix: str) -> None:
    async with connection(url) as conn:
        names = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", prefix
        )
        for row in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{row["nspname"]}" CASCADE')


async def copy(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> float:
    """COPY rows into a table; return the seconds it took."""
    started = time.perf_counter()
    await conn.copy_records_to_table(table, records=rows, columns=list(columns))
    return time.perf_counter() - started


async def raw_copy_rate(
    conn: asyncpg.Connection, types: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> float:
    """Rows/s of COPY into an unindexed temporary table of the given column types: the
    ceiling an ingest can approach."""
    name = f"raw_copy_{uuid.uuid4().hex[:8]}"
    columns = [f"c{n}" for n in range(len(types))]
    body = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
    await conn.execute(f"CREATE TEMPORARY TABLE {name} ({body})")
    try:
        seconds = await copy(conn, name, columns, rows)
    finally:
        await conn.execute(f"DROP TABLE {name}")
    return len(rows) / seconds


async def round_trip_rate(url: str, *, concurrency: int, seconds: float = 2.0) -> float:
    """Round trips/s of `SELECT 1` from `concurrency` connections at once."""
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=concurrency, max_size=concurrency)
    assert pool is not None
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                await conn.fetchval("SELECT 1")
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return done / elapsed
