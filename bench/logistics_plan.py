"""One distribution plan over a whole town, on PostgreSQL.

Builds the synthetic town of bench/testing_coverage.py (300,000 residents in compounds of
7,500 by default, households of one to six, about 3 % infants) straight into the logistics
directory with COPY, then times the plan service function (the one the endpoint calls, its
commit included) for a supply package per household (two from six people) and a formula tin
per infant, over the whole town. Beside it, a raw COPY of as many allocation rows as the
plan wrote, into a bare table and into one shaped like ``distribution_allocations`` with its
indexes, in the same run.

    .venv/bin/python -m bench.logistics_plan [--size 300000]

Goal (issue 10): >= 50,000 households/s (the whole town in <= 2 s).
"""

import argparse
import asyncio
import random
import sys
import uuid
from dataclasses import dataclass
from typing import Any, TextIO

from bench import _pg
from bench.common import (
    Rate,
    emit,
    fetch_records,
    goal_line,
    machine_line,
    pg_platform,
    ratio_line,
    raw_copy,
    stopwatch,
    unique_prefix,
)
from bench.testing_coverage import PLACE_COLUMNS, RESIDENT_COLUMNS, build_town, resident_rows
from cordon.platform import Platform
from services.logistics.items.schemas import ItemCreate
from services.logistics.items.service import create_item
from services.logistics.models import kernel
from services.logistics.plans import service
from services.logistics.plans.repository import COLUMNS
from services.logistics.plans.schemas import PlanCreate
from services.logistics.stock.schemas import ReceiptCreate
from services.logistics.stock.service import receive
from shared.auth import Principal, Role, Scope, ScopeKind

GOAL_RATE = 50_000
INFANTS = 0.03
HOUSEHOLD_COLUMNS = ("id", "unit_id", "code", "room", "town_id", "compound_id", "building_id")
# The columns the plan writes, in its order.
ALLOCATION_COLUMNS = COLUMNS


@dataclass(frozen=True)
class Planned:
    households: int
    rows: int
    events: int
    rate: Rate
    copies: list[Rate]


def _households(town: Any) -> list[tuple[Any, ...]]:
    seen: dict[uuid.UUID, tuple[Any, ...]] = {}
    for _, household, unit, building, compound in town.residents:
        if household not in seen:
            code = f"{len(seen) + 1:06d}"
            seen[household] = (household, unit, code, None, town.id, compound, building)
    return list(seen.values())


def _with_infants(rows: list[tuple[Any, ...]], seed: int) -> list[tuple[Any, ...]]:
    """A share of residents tagged infant (the tags column is the eighth)."""
    rng = random.Random(seed)
    return [(*row[:7], '["infant"]', *row[8:]) if rng.random() < INFANTS else row for row in rows]


async def load_town(platform: Platform, town: Any, *, seed: int) -> None:
    schema = platform.settings.service_schema("logistics")
    async with _pg.connection(_url(platform), schema=schema) as conn:
        await _pg.copy(conn, "directory_places", PLACE_COLUMNS, town.places)
        await _pg.copy(conn, "directory_households", HOUSEHOLD_COLUMNS, _households(town))
        residents = _with_infants(resident_rows(town, seed), seed)
        await _pg.copy(conn, "directory_residents", RESIDENT_COLUMNS, residents)
        for table in ("directory_places", "directory_households", "directory_residents"):
            await conn.execute(f"VACUUM ANALYZE {table}")


def _url(platform: Platform) -> str:
    url = platform.settings.database_url
    assert url is not None  # pg_platform always names one
    return url


def _operator(town_id: uuid.UUID) -> Principal:
    return Principal(
        id="bench",
        username="bench",
        role=Role.town_operator,
        scope=Scope.of(ScopeKind.towns, towns=[town_id]),
    )


async def stock_town(platform: Platform, town: Any) -> tuple[uuid.UUID, uuid.UUID]:
    """The catalogue's supply package and formula tin, and every compound's store stocked
    with more than the plan takes (untimed: this is the stock helper's work)."""
    runtime = platform.runtime("logistics")
    async with runtime.uow(_operator(town.id)) as uow:
        package, formula = [
            (await create_item(uow, data=ItemCreate.model_validate(body))).id
            for body in (
                {"town_id": town.id, "name": "Supply package", "unit": "portion"},
                {"town_id": town.id, "name": "Formula tin", "unit": "box", "perishable": True},
            )
        ]
        for compound in town.compounds:
            lines = [
                {"item_id": package, "quantity": 10_000, "batch": "P-1"},
                {"item_id": formula, "quantity": 1_000, "batch": "F-1", "expires_on": "2099-01-31"},
            ]
            receipt = {"holder_id": compound, "source": "government", "lines": lines}
            await receive(uow, data=ReceiptCreate.model_validate(receipt))
        await uow.commit()
    return package, formula


def _request(town_id: uuid.UUID, package: uuid.UUID, formula: uuid.UUID) -> PlanCreate:
    return PlanCreate.model_validate(
        {
            "town_id": town_id,
            "name": "Supply packages, the whole town",
            "scope": {"kind": "town"},
            "lines": [
                {"item_id": package},
                {
                    "item_id": formula,
                    "per_household": 0,
                    "large_household_size": None,
                    "additions": [{"tag": "infant", "per_person": 1}],
                    "only_tags": ["infant"],
                },
            ],
        }
    )


async def time_plan(
    platform: Platform, town_id: uuid.UUID, request: PlanCreate
) -> tuple[int, float]:
    """Plan over the town as its operator would (allocate, reserve at every compound's store,
    announce), commit included; households and seconds."""
    runtime = platform.runtime("logistics")
    async with runtime.uow(_operator(town_id)) as uow:
        with stopwatch() as elapsed:
            plan = await service.create_plan(uow, data=request)
            await uow.commit()
    return plan.households, elapsed[0]


async def _count(platform: Platform, sql: str) -> int:
    schema = platform.settings.service_schema("logistics")
    async with _pg.connection(_url(platform), schema=schema) as conn:
        return int(await conn.fetchval(sql))


async def measure(size: int, out: TextIO, *, compound_size: int = 7_500, seed: int = 7) -> Planned:
    prefix = unique_prefix("plan")
    emit(out, f"distribution plan on PostgreSQL, {size:,} residents (schemas {prefix}*)")
    emit(out, machine_line())
    async with pg_platform(["logistics"], prefix=prefix) as platform:
        town = build_town(size=size, compound_size=compound_size, seed=seed)
        await load_town(platform, town, seed=seed)
        package, formula = await stock_town(platform, town)
        request = _request(town.id, package, formula)
        households, seconds = await time_plan(platform, town.id, request)
        schema = platform.settings.service_schema("logistics")
        records = await fetch_records(schema, "distribution_allocations", ALLOCATION_COLUMNS)
        events = await _count(
            platform,
            f"SELECT count(*) FROM {kernel.outbox.name} "
            "WHERE routing_key = 'logistics.distribution.planned'",
        )
        copies = [
            await raw_copy(
                label=f"raw COPY of the allocation rows, {shape}",
                schema=schema,
                like="distribution_allocations",
                columns=ALLOCATION_COLUMNS,
                records=records,
                full=shape != "bare",
            )
            for shape in ("bare", "with indexes and keys")
        ]
    label = "plan over the town (allocate, reserve, events, commit)"
    rate = Rate(label, households, seconds, "households")
    rows = Rate("  allocation rows written meanwhile", len(records), seconds, "rows")
    emit(
        out,
        f"town: {len(town.residents):,} residents, {households:,} households, "
        f"{len(town.compounds)} compounds; {events} logistics.distribution.planned events "
        "(one per compound)",
        rate.line(),
        rows.line(),
        *(copy.line() for copy in copies),
        *(ratio_line(rows, copy) for copy in copies),
        goal_line(f">= {GOAL_RATE:,} households/s", rate.per_second >= GOAL_RATE),
    )
    return Planned(households, len(records), events, rate, copies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--compound-size", type=int, default=7_500)
    args = parser.parse_args()
    asyncio.run(measure(args.size, sys.stdout, compound_size=args.compound_size))


if __name__ == "__main__":
    main()
