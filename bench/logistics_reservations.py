"""Reservation throughput on PostgreSQL: how many plans' reservations a compound's store
takes per second, and the whole town's stores together.

Each reservation is one unit of work through the service function distribution plans call
(`reservations.service.reserve`: lock the holder, read its batches earliest expiry first,
move the batch with a conditional UPDATE, write the reservation, commit). Measured from
`--concurrency` tasks at once on one store (every one waits for the holder's lock: the
design serialises a holder's changes) and spread over as many stores; beside the raw
ceilings of the same run: transactions of one row-locking UPDATE on one row (the most any
design that serialises per holder could reach) and on as many rows, and `SELECT 1` round
trips.

    .venv/bin/python -m bench.logistics_reservations [--seconds 4] [--concurrency 8]
"""

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TextIO

import asyncpg
from sqlalchemy import insert

from bench import _pg
from bench.common import Rate, database_url, pg_platform, ratio_line, unique_prefix
from cordon.platform import Platform
from services.logistics.items.schemas import ItemCreate
from services.logistics.items.service import create_item
from services.logistics.models import directory
from services.logistics.reservations.service import Reference, reserve
from services.logistics.stock.schemas import ReceiptCreate
from services.logistics.stock.service import receive
from shared.auth import Principal
from shared.db import table_of


async def _places(platform: Platform, stores: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A town and its compounds, as the directory would hold them."""
    Place = directory.models.Place
    town_id, committee_id = uuid.uuid4(), uuid.uuid4()
    compounds = [uuid.uuid4() for _ in range(stores)]
    rows = [{"id": town_id, "kind": "town", "town_id": town_id, "code": "T", "name": "Town"}]
    rows += [
        {
            "id": compound_id,
            "kind": "compound",
            "town_id": town_id,
            "committee_id": committee_id,
            "compound_id": compound_id,
            "code": f"C{n:02d}",
            "name": f"Compound {n}",
        }
        for n, compound_id in enumerate(compounds)
    ]
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        await uow.session.execute(insert(table_of(Place)), rows)
        await uow.commit()
    return town_id, compounds


async def _stock(platform: Platform, town_id: uuid.UUID, stores: list[uuid.UUID]) -> uuid.UUID:
    """Rice in three batches of different expiry at every store."""
    runtime = platform.runtime("logistics")
    async with runtime.uow(Principal.system()) as uow:
        item = await create_item(uow, data=ItemCreate(town_id=town_id, name="rice", unit="kg"))
        await uow.commit()
    today = datetime.now(UTC).date()
    for store in stores:
        async with runtime.uow(Principal.system()) as uow:
            lines = [
                {"item_id": item.id, "quantity": 10**9, "expires_on": today + timedelta(days)}
                for days in (30, 60, 90)
            ]
            data = ReceiptCreate(holder_id=store, source="government", lines=lines)
            await receive(uow, data=data)
            await uow.commit()
    return item.id


async def _for(seconds: float, concurrency: int, work: Callable[[int], Awaitable[None]]) -> int:
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(n: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await work(n)
            done += 1

    await asyncio.gather(*(loop(n) for n in range(concurrency)))
    return done


async def reservations(
    platform: Platform,
    item_id: uuid.UUID,
    stores: list[uuid.UUID],
    *,
    seconds: float,
    concurrency: int,
) -> Rate:
    runtime = platform.runtime("logistics")

    async def one(n: int) -> None:
        async with runtime.uow(Principal.system()) as uow:
            reference = Reference(kind="plan", id=uuid.uuid4())
            await reserve(
                uow, holder_id=stores[n % len(stores)], lines=[(item_id, 1)], reference=reference
            )
            await uow.commit()

    started = time.perf_counter()
    count = await _for(seconds, concurrency, one)
    where = "one store" if len(stores) == 1 else f"{len(stores)} stores"
    return Rate(f"reserve() at {where}", count, time.perf_counter() - started, "reservations")


async def raw_locked_updates(prefix: str, *, rows: int, seconds: float, concurrency: int) -> Rate:
    """Transactions of one row-locking UPDATE (and commit) from ``concurrency`` connections,
    over ``rows`` rows: the raw ceiling of changes serialised per row."""
    schema = f"{prefix}raw"
    async with _pg.connection(database_url()) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'CREATE TABLE "{schema}".locked (id int PRIMARY KEY, v bigint)')
        await conn.execute(
            f'INSERT INTO "{schema}".locked SELECT n, 0 FROM generate_series(0, $1 - 1) n', rows
        )
    pool = await asyncpg.create_pool(
        _pg.asyncpg_dsn(database_url()), min_size=concurrency, max_size=concurrency
    )
    assert pool is not None

    async def one(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f'UPDATE "{schema}".locked SET v = v + 1 WHERE id = $1', n % rows)

    try:
        started = time.perf_counter()
        count = await _for(seconds, concurrency, one)
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
        async with _pg.connection(database_url()) as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    where = "one row" if rows == 1 else f"{rows} rows"
    return Rate(f"raw locking UPDATE transactions on {where}", count, elapsed, "transactions")


async def measure(*, seconds: float, concurrency: int, out: TextIO) -> list[Rate]:
    prefix = unique_prefix("reservations")
    async with pg_platform(["logistics"], prefix=prefix) as platform:
        town_id, stores = await _places(platform, concurrency)
        item_id = await _stock(platform, town_id, stores)
        one_store = await reservations(
            platform, item_id, stores[:1], seconds=seconds, concurrency=concurrency
        )
        many = await reservations(
            platform, item_id, stores, seconds=seconds, concurrency=concurrency
        )
    raw_one = await raw_locked_updates(prefix, rows=1, seconds=seconds, concurrency=concurrency)
    raw_many = await raw_locked_updates(
        prefix, rows=concurrency, seconds=seconds, concurrency=concurrency
    )
    trips = await _pg.round_trip_rate(database_url(), concurrency=concurrency, seconds=seconds)
    print(f"PostgreSQL, concurrency {concurrency}, schemas {prefix}*", file=out)
    for rate, baseline in ((one_store, raw_one), (many, raw_many)):
        print(rate.line(), file=out)
        print(baseline.line(), file=out)
        print(ratio_line(rate, baseline), file=out)
    print(f"{'raw SELECT 1 round trips':<58} {trips:>10,.0f} /s", file=out)
    return [one_store, many, raw_one, raw_many]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(measure(seconds=args.seconds, concurrency=args.concurrency, out=sys.stdout))


if __name__ == "__main__":
    main()
