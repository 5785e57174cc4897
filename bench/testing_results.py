"""Lab results at the field's burst: 100,000 pooled tubes covering 1,000,000 residents
resulted in one upload, on PostgreSQL, through the same service function as
`POST /v1/results/uploads`; printed as person-results/s and as a ratio to a raw COPY of as
many rows measured in the same run.

    .venv/bin/python -m bench.testing_results [--tubes 100000] [--pool 10]
"""

import argparse
import asyncio
import io
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import _pg
from cordon.platform import Platform
from services.testing.app import SPEC as TESTING
from services.testing.results.service import upload_results
from shared.auth import Principal
from shared.ids import new_id
from shared.settings import Settings

GOAL = 100_000  # person-results/s: a million-person round resulted in 10 s
POSITIVE_EVERY = 5_000
SAMPLED = datetime(2022, 4, 2, 5, 0, tzinfo=UTC)
MEMBER_TYPES = (
    "uuid",
    "uuid",
    "boolean",
    "varchar(20)",
    "timestamptz",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
)


def sampled_round(
    tubes: int, pool: int
) -> tuple[uuid.UUID, list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A town's open round with every member sampled: tubes, their members and the round's
    members, as rows to COPY."""
    town, round_id = new_id(), new_id()
    tube_rows, tube_members, members = [], [], []
    compound = building = new_id()
    for n in range(tubes):
        if n % 750 == 0:  # 7,500-resident compounds of ten-person pools
            compound = new_id()
        if n % 10 == 0:
            building = new_id()
        tube = new_id()
        tube_rows.append(
            (
                tube,
                round_id,
                f"T{n:07d}",
                pool > 1,
                False,
                pool,
                "bench",
                SAMPLED,
                "bench",
                "collected",
                town,
                compound,
                building,
            )
        )
        for _ in range(pool):
            resident = new_id()
            tube_members.append((tube, resident, round_id, town, compound, building))
            members.append(
                (
                    round_id,
                    resident,
                    resident,
                    False,
                    "sampled",
                    SAMPLED,
                    tube,
                    town,
                    compound,
                    building,
                )
            )
    return round_id, tube_rows, tube_members, members


def lab_file(tubes: int) -> bytes:
    lines = ["tube_code,result,lab,resulted_at"]
    resulted = (SAMPLED + timedelta(hours=9)).isoformat()
    for n in range(tubes):
        result = "positive" if n % POSITIVE_EVERY == 0 else "negative"
        lines.append(f"T{n:07d},{result},Riverside Lab,{resulted}")
    return ("\n".join(lines) + "\n").encode()


async def load(url: str, schema: str, tubes: int, pool: int) -> tuple[int, float]:
    """COPY the sampled round in; return its people and the raw COPY rate of as many rows."""
    round_id, tube_rows, tube_members, members = sampled_round(tubes, pool)
    town = tube_rows[0][10]
    async with _pg.connection(url, schema=schema) as conn:
        await conn.execute(
            "INSERT INTO rounds (id, name, kind, status, scope, starts_at, ends_at, pool_size, "
            "created_by, created_at, opened_at, town_id) VALUES ($1, 'Bench round', 'pcr', "
            "'open', '{\"kind\": \"town\", \"ids\": []}', $2, $3, $4, 'bench', now(), $2, $5)",
            round_id,
            SAMPLED,
            SAMPLED + timedelta(hours=6),
            pool,
            town,
        )
        await _pg.copy(
            conn,
            "tubes",
            (
                "id",
                "round_id",
                "code",
                "pooled",
                "retest",
                "size",
                "collector",
                "collected_at",
                "recorded_by",
                "status",
                "town_id",
                "compound_id",
                "building_id",
            ),
            tube_rows,
        )
        await _pg.copy(
            conn,
            "tube_members",
            ("tube_id", "resident_id", "round_id", "town_id", "compound_id", "building_id"),
            tube_members,
        )
        await _pg.copy(
            conn,
            "round_members",
            (
                "round_id",
                "resident_id",
                "household_id",
                "door_to_door",
                "status",
                "sampled_at",
                "tube_id",
                "town_id",
                "compound_id",
                "building_id",
            ),
            members,
        )
        for table in ("tubes", "tube_members", "round_members"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        raw = await _pg.raw_copy_rate(conn, MEMBER_TYPES, [m[1:] for m in members])
    return len(members), raw


@dataclass(frozen=True)
class Figures:
    people: int
    resulted: int
    positive_pools: int
    person_results_per_s: float
    raw_copy_rows_per_s: float


async def run(
    *, url: str = _pg.DEFAULT_URL, tubes: int = 100_000, pool: int = 10, report: bool = True
) -> Figures:
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            database_url=url, schema_prefix=prefix, data_dir=Path(scratch), log_json=False
        )
        platform = Platform(settings, [TESTING])
        runtime = platform.runtime("testing")
        try:
            await platform.migrate()
            people, raw = await load(url, settings.service_schema("testing"), tubes, pool)
            content = lab_file(tubes)
            started = time.perf_counter()
            async with runtime.uow(Principal.system("bench")) as uow:
                upload, _ = await upload_results(
                    uow,
                    file=io.BytesIO(content),
                    filename="lab.csv",
                    media="csv",
                    skew=settings.clock_skew,
                )
                await uow.commit()
            seconds = time.perf_counter() - started
        finally:
            await platform.close()
            await _pg.drop_schemas(url, prefix)
    rate = upload.people / seconds
    figures = Figures(people, upload.people, upload.positive, rate, raw)
    if not report:
        return figures
    print(
        f"results upload: {tubes:,} tubes, {upload.people:,} of {people:,} people resulted "
        f"in {seconds:.2f} s ({upload.positive} positive pools)"
    )
    print(
        f"  {rate:,.0f} person-results/s; raw COPY of as many rows (unindexed): "
        f"{raw:,.0f} rows/s; ratio {rate / raw:.2f}"
    )
    print(f"  goal >= {GOAL:,} person-results/s: {'PASS' if rate >= GOAL else 'MISS'}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tubes", type=int, default=100_000)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--url", default=_pg.DEFAULT_URL)
    args = parser.parse_args()
    asyncio.run(run(url=args.url, tubes=args.tubes, pool=args.pool))


if __name__ == "__main__":
    main()
