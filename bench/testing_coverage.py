"""Coverage of a screening round, and tube registration through the HTTP API, on PostgreSQL.

Builds a synthetic town (300,000 residents in compounds of 7,500 by default) straight into
the testing service's directory and one round's members with COPY, marks a field-like share
of them sampled and resulted, then times the coverage service function (the one the
endpoint calls) for one compound and for the whole town, and the registration of tubes
through `cordon serve` on 127.0.0.1: single tubes posted concurrently, then batches.
Every figure is printed beside the raw infrastructure measured in the same run.

    .venv/bin/python -m bench.testing_coverage [--size 300000] [--tubes 12000] [--seconds 8]

Goals (issue 3): a 7,500-resident compound ≤ 50 ms, a 300,000-resident town ≤ 500 ms,
≥ 1,000 tubes/s through the API with p99 ≤ 50 ms.
"""

import argparse
import asyncio
import json
import math
import os
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench import _pg, _rabbit, _wrk
from bench._server import Server, cordon_serve
from bench._timing import Timings, repeat
from cordon.platform import Platform
from services.registry.demo import GIVEN, RESIDENTS_PER_UNIT, SURNAMES
from services.testing.app import SPEC as TESTING
from services.testing.coverage.service import coverage, missed
from services.testing.models import MemberStatus
from shared.auth import Principal, Role, Scope, ScopeKind, issue_token
from shared.ids import new_id
from shared.privacy import Presenter
from shared.settings import Settings

UNITS_PER_BUILDING = 3
COMPOUNDS_PER_COMMITTEE = 4
GRIDS = 10
MICROGRID_BUILDINGS = 4
POOL = 10
# The single-tube goal: a phone on a weak network waits at most this long, 99 times in 100.
P99_GOAL_MS = 50
START = datetime(2022, 4, 2, 5, tzinfo=UTC)
# Where a night's round stands by morning: most sampled, most of those resulted.
SHARES = (
    (MemberStatus.expected, 0.08),
    (MemberStatus.sampled, 0.10),
    (MemberStatus.resample_required, 0.003),
    (MemberStatus.retest_required, 0.002),
    (MemberStatus.positive, 0.0002),
)


@dataclass
class SyntheticTown:
    id: uuid.UUID
    places: list[tuple[Any, ...]] = field(default_factory=list)
    grid_buildings: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    # (id, household, unit, building, compound)
    residents: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]] = field(
        default_factory=list
    )
    compounds: list[uuid.UUID] = field(default_factory=list)


PLACE_COLUMNS = (
    "id",
    "kind",
    "town_id",
    "committee_id",
    "compound_id",
    "building_id",
    "parent_id",
    "code",
    "name",
)
RESIDENT_COLUMNS = (
    "id",
    "household_id",
    "unit_id",
    "name",
    "document_number",
    "phone",
    "birth_date",
    "tags",
    "door_to_door",
    "updated_at",
    "town_id",
    "compound_id",
    "building_id",
)
MEMBER_COLUMNS = (
    "round_id",
    "resident_id",
    "household_id",
    "unit_id",
    "door_to_door",
    "status",
    "tube_id",
    "sampled_at",
    "resulted_at",
    "town_id",
    "compound_id",
    "building_id",
)
MEMBER_TYPES = (
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "boolean",
    "varchar(20)",
    "uuid",
    "timestamptz",
    "timestamptz",
    "uuid",
    "uuid",
    "uuid",
)


def build_town(*, size: int, compound_size: int, seed: int) -> SyntheticTown:
    """Places and residents: compounds of `compound_size` in buildings of three units of
    about 40 residents (as the demo town), households of one to six, grids of buildings."""
    rng = random.Random(seed)
    town = SyntheticTown(id=new_id())
    t = town.id
    town.places.append((t, "town", t, None, None, None, None, "BENCH", "Bench town"))
    buildings: list[uuid.UUID] = []
    committee = None
    for c in range(math.ceil(size / compound_size)):
        if c % COMPOUNDS_PER_COMMITTEE == 0:
            committee = new_id()
            code = f"K{c // COMPOUNDS_PER_COMMITTEE + 1}"
            town.places.append((committee, "committee", t, committee, None, None, None, code, code))
        compound = new_id()
        town.compounds.append(compound)
        town.places.append(
            (compound, "compound", t, committee, compound, None, None, f"C{c + 1:03d}", f"C{c + 1}")
        )
        people = min(compound_size, size - c * compound_size)
        units = max(1, round(people / RESIDENTS_PER_UNIT))
        unit_ids = []
        for b in range(math.ceil(units / UNITS_PER_BUILDING)):
            building = new_id()
            buildings.append(building)
            town.places.append(
                (building, "building", t, committee, compound, building, None, str(b + 1), "")
            )
            for u in range(UNITS_PER_BUILDING):
                unit = new_id()
                unit_ids.append((unit, building))
                town.places.append(
                    (
                        unit,
                        "unit",
                        t,
                        committee,
                        compound,
                        building,
                        None,
                        str(u + 1),
                        f"{b + 1}-{u + 1}",
                    )
                )
        _people(rng, town, compound, unit_ids, people)
    _grids(town, buildings)
    return town


def _people(
    rng: random.Random,
    town: SyntheticTown,
    compound: uuid.UUID,
    units: list[tuple[uuid.UUID, uuid.UUID]],
    people: int,
) -> None:
    for n in range(people):
        unit, building = units[n * len(units) // people]
        if n == 0 or rng.random() < 0.35:
            household = new_id()
        town.residents.append((new_id(), household, unit, building, compound))


def _grids(town: SyntheticTown, buildings: list[uuid.UUID]) -> None:
    """Ten grids over the town's buildings, each split into microgrids of four (the demo's
    shape)."""
    per_grid = math.ceil(len(buildings) / GRIDS)
    for g in range(GRIDS):
        members = buildings[g * per_grid : (g + 1) * per_grid]
        if not members:
            break
        grid = new_id()
        town.places.append(
            (grid, "grid", town.id, None, None, None, None, f"G{g + 1}", f"G{g + 1}")
        )
        town.grid_buildings += [(grid, b) for b in members]
        for m, first in enumerate(range(0, len(members), MICROGRID_BUILDINGS), start=1):
            micro = new_id()
            code = f"G{g + 1}.{m}"
            town.places.append((micro, "grid", town.id, None, None, None, grid, code, code))
            town.grid_buildings += [
                (micro, b) for b in members[first : first + MICROGRID_BUILDINGS]
            ]


def resident_rows(town: SyntheticTown, seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows = []
    for resident, household, unit, building, compound in town.residents:
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=2))
        phone = f"+861{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        door = rng.random() < 0.02
        tags = '["bedridden"]' if door else "[]"
        document = f"3301{rng.randrange(10**14):014d}"
        rows.append(
            (
                resident,
                household,
                unit,
                name,
                document,
                phone,
                None,
                tags,
                door,
                now,
                town.id,
                compound,
                building,
            )
        )
    return rows


def member_rows(
    town: SyntheticTown, round_id: uuid.UUID, *, seed: int, results: bool
) -> list[tuple[Any, ...]]:
    """The round's members; with `results`, in the shares of SHARES (the rest negative)."""
    rng = random.Random(seed)
    rows = []
    for resident, household, unit, building, compound in town.residents:
        status, sampled, resulted = MemberStatus.expected, None, None
        if results:
            status = _draw(rng)
            if status is not MemberStatus.expected:
                sampled = START + timedelta(minutes=rng.randrange(360))
            if status not in (MemberStatus.expected, MemberStatus.sampled):
                resulted = sampled + timedelta(hours=8) if sampled else None
        rows.append(
            (
                round_id,
                resident,
                household,
                unit,
                False,
                status.value,
                None,
                sampled,
                resulted,
                town.id,
                compound,
                building,
            )
        )
    return rows


def _draw(rng: random.Random) -> MemberStatus:
    x = rng.random()
    for status, share in SHARES:
        if x < share:
            return status
        x -= share
    return MemberStatus.negative


async def insert_round(conn: asyncpg.Connection, town: SyntheticTown, *, status: str) -> uuid.UUID:
    round_id = new_id()
    opened = START if status != "scheduled" else None
    closed = START + timedelta(hours=6) if status == "closed" else None
    await conn.execute(
        "INSERT INTO rounds (id, name, kind, status, scope, starts_at, ends_at, pool_size, "
        "created_by, created_at, opened_at, closed_at, town_id, compound_id, building_id) "
        "VALUES ($1, $2, 'pcr', $3, $4, $5, $6, 10, 'bench', now(), $7, $8, $9, NULL, NULL)",
        round_id,
        f"Bench round {status}",
        status,
        json.dumps({"kind": "town", "ids": []}),
        START,
        START + timedelta(hours=6),
        opened,
        closed,
        town.id,
    )
    return round_id


@dataclass
class Figures:
    residents: int
    copy_rows_per_s: float
    raw_copy_rows_per_s: float
    coverage: dict[str, Timings]
    raw_count_ms: float
    # Single tubes and GET /healthz at each concurrency swept (in its order); ``single`` and
    # ``health`` are those of the best: the highest rate with p99 <= 50 ms, else the highest.
    levels: "list[Level]" = field(default_factory=list)
    batch: "LoadResult | None" = None
    raw_round_trips_per_s: float = 0.0
    sampled_after: int = 0

    @property
    def best(self) -> "Level | None":
        within = [level for level in self.levels if level.single.wrk.p99_ms <= P99_GOAL_MS]
        return max(within or self.levels, key=lambda level: level.single.rate, default=None)

    @property
    def single(self) -> "LoadResult | None":
        return self.best.single if self.best else None

    @property
    def health(self) -> "LoadResult | None":
        return self.best.health if self.best else None


@dataclass
class LoadResult:
    """What wrk measured for one kind of request, and the API process's CPU time meanwhile."""

    tubes: int
    wrk: _wrk.WrkResult
    server_cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.tubes / self.wrk.seconds


@dataclass
class Level:
    """Single tubes, and GET /healthz, at one concurrency (wrk's connections)."""

    connections: int
    single: LoadResult
    health: LoadResult

    @property
    def ratio(self) -> float:
        return self.single.wrk.rate / self.health.wrk.rate


async def load_town(
    url: str, schema: str, town: SyntheticTown, *, seed: int
) -> tuple[uuid.UUID, uuid.UUID, float, float]:
    """COPY the directory and two rounds' members (one resulted, one open for tubes); return
    the round ids, the COPY rate into round_members and the raw COPY rate."""
    async with _pg.connection(url, schema=schema) as conn:
        await _pg.copy(conn, "directory_places", PLACE_COLUMNS, town.places)
        await _pg.copy(
            conn, "directory_grid_buildings", ("grid_id", "building_id"), town.grid_buildings
        )
        await _pg.copy(conn, "directory_residents", RESIDENT_COLUMNS, resident_rows(town, seed))
        resulted = await insert_round(conn, town, status="closed")
        members = member_rows(town, resulted, seed=seed, results=True)
        seconds = await _pg.copy(conn, "round_members", MEMBER_COLUMNS, members)
        raw = await _pg.raw_copy_rate(conn, MEMBER_TYPES, members)
        open_round = await insert_round(conn, town, status="open")
        await _pg.copy(
            conn,
            "round_members",
            MEMBER_COLUMNS,
            member_rows(town, open_round, seed=seed, results=False),
        )
        await conn.execute("VACUUM ANALYZE round_members")
        await conn.execute("ANALYZE directory_places")
        await conn.execute("ANALYZE directory_residents")
        await conn.execute("ANALYZE directory_grid_buildings")
    return resulted, open_round, len(members) / seconds, raw


async def time_coverage(
    platform: Platform, town: SyntheticTown, round_id: uuid.UUID, *, repeats: int
) -> dict[str, Timings]:
    runtime = platform.runtime("testing")
    operator = Principal(
        id="bench",
        username="bench",
        role=Role.town_operator,
        scope=Scope.of(ScopeKind.towns, towns=[town.id]),
    )
    compound = town.compounds[0]
    cases: dict[str, dict[str, Any]] = {
        "compound by building": {"by": "building", "compound_id": compound},
        "compound by unit": {"by": "unit", "compound_id": compound},
        "town by compound": {"by": "compound"},
        "town by grid": {"by": "grid"},
        "town by building": {"by": "building"},
        "town by unit": {"by": "unit"},
    }
    timings = {}
    for name, params in cases.items():

        async def call(params: dict[str, Any] = params) -> object:
            async with runtime.uow(operator) as uow:
                return await coverage(uow, round_id=round_id, **params)

        timings[name] = await repeat(call, times=repeats)
    for name, where in (("compound missed, a page", compound), ("town missed, a page", None)):

        async def page(where: uuid.UUID | None = where) -> object:
            async with runtime.uow(operator) as uow:
                found = await missed(
                    uow,
                    round_id=round_id,
                    compound_id=where,
                    building_id=None,
                    unit_id=None,
                    cursor=None,
                    limit=100,
                )
                # Masked as the endpoint answers it.
                return await Presenter(uow, reveal=False, endpoint="bench")(found)

        timings[name] = await repeat(page, times=repeats)
    return timings


async def raw_count(url: str, schema: str, round_id: uuid.UUID, *, repeats: int) -> float:
    """The same members counted by asyncpg without grouping: the floor for a town's coverage."""
    async with _pg.connection(url, schema=schema) as conn:
        query = "SELECT count(*), count(sampled_at) FROM round_members WHERE round_id = $1"

        async def call() -> object:
            return await conn.fetchrow(query, round_id)

        return (await repeat(call, times=repeats)).median


def pools(town: SyntheticTown, *, count: int, skip: int = 0) -> list[list[str]]:
    """`count` pools of ten residents of one compound each, after the first `skip` pools."""
    found: list[list[str]] = []
    current: list[str] = []
    compound = None
    for resident, _, _, _, resident_compound in town.residents:
        if resident_compound != compound:
            current, compound = [], resident_compound
        current.append(str(resident))
        if len(current) == POOL:
            found.append(current)
            current = []
            if len(found) == skip + count:
                break
    return found[skip:]


def tube_bodies(members: Sequence[list[str]], prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "code": f"{prefix}{n:07d}",
            "member_ids": pool,
            "collector": "Nurse Li",
            "collected_at": (START + timedelta(minutes=n % 360)).isoformat(),
        }
        for n, pool in enumerate(members)
    ]


def load(
    server: Server,
    path: str,
    *,
    bodies: Sequence[dict[str, Any]] = (),
    tubes_each: int = 1,
    token: str = "",
    connections: int,
    seconds: float,
) -> LoadResult:
    """wrk against the API process: every body posted once (GET without bodies) for at most
    `seconds`; the API's CPU time counted too, a figure the rest of the machine does not
    blur."""
    cpu = server.cpu_seconds()
    result = _wrk.run(
        server.base,
        path,
        method="POST" if bodies else "GET",
        bodies=bodies,
        token=token,
        connections=connections,
        seconds=seconds,
    )
    return LoadResult(
        result.requests * tubes_each, result, server_cpu_seconds=server.cpu_seconds() - cpu
    )


def warm_up(
    server: Server,
    token: str,
    town: SyntheticTown,
    round_id: uuid.UUID,
    *,
    tubes: int,
    connections: int,
) -> int:
    """Single tubes before the timed loads (the process's first statements and connections);
    how many pools they took."""
    warmup = min(500, max(1, tubes // 10))
    bodies = tube_bodies(pools(town, count=warmup), "W")
    path = f"/v1/rounds/{round_id}/tubes"
    load(server, path, bodies=bodies, token=token, connections=connections, seconds=2)
    return warmup


async def settle(url: str, schema: str) -> None:
    """What a deployment's autovacuum does once a few dozen tubes are in (this machine's
    PostgreSQL may run without it): the tables the night fills are analyzed, so statements
    planned from here on see them as they are, not as the empty tables of before."""
    async with _pg.connection(url, schema=schema) as conn:
        await conn.execute("ANALYZE tubes")
        await conn.execute("ANALYZE tube_members")


def time_tubes(
    server: Server,
    token: str,
    town: SyntheticTown,
    round_id: uuid.UUID,
    *,
    tubes: int,
    skip: int,
    concurrency: Sequence[int],
    batch_size: int,
    batch_concurrency: int,
    seconds: float,
) -> tuple[list[Level], LoadResult]:
    """Single tubes at each of the ``concurrency`` levels, each beside GET /healthz at the
    same level (the HTTP stack's own ceiling in the same run), then tubes in batches of
    `batch_size` over `batch_concurrency` connections (a sampling site's client sending
    what it scanned every few seconds), all from pools after the first ``skip``. Each load
    runs until its `tubes` are posted or `seconds` pass.

    Several levels, because wrk's connections bound the requests in flight: 1,000 tubes/s
    at a p99 of 50 ms means about 30 in flight (Little's law), which 16 connections cannot
    hold; and a group commit shares its statements among the tubes that arrive together."""
    available = len(pools(town, count=len(town.residents), skip=skip))
    # Each tube is a new pool of ten: a small town shares its pools between the loads.
    tubes = min(tubes, available // (len(concurrency) + 1))
    batches = max(1, tubes // batch_size)
    members = pools(town, count=tubes * len(concurrency) + batches * batch_size, skip=skip)
    path = f"/v1/rounds/{round_id}/tubes"
    levels = []
    for n, connections in enumerate(concurrency):
        bodies = tube_bodies(members[n * tubes : (n + 1) * tubes], f"S{n}-")
        single = load(
            server, path, bodies=bodies, token=token, connections=connections, seconds=seconds
        )
        health = load(server, "/healthz", seconds=seconds, connections=connections)
        levels.append(Level(connections, single, health))
    batch_tubes = tube_bodies(members[tubes * len(concurrency) :], "B")
    grouped = [
        {"tubes": batch_tubes[n : n + batch_size]} for n in range(0, len(batch_tubes), batch_size)
    ]
    batch = load(
        server,
        f"{path}/batch",
        bodies=grouped,
        tubes_each=batch_size,
        token=token,
        connections=batch_concurrency,
        seconds=seconds,
    )
    return levels, batch


async def sampled_count(url: str, schema: str, round_id: uuid.UUID) -> int:
    async with _pg.connection(url, schema=schema) as conn:
        query = "SELECT count(sampled_at) FROM round_members WHERE round_id = $1"
        return int(await conn.fetchval(query, round_id))


async def run(
    *,
    url: str = _pg.DEFAULT_URL,
    broker_url: str = _rabbit.DEFAULT_URL,
    redis_url: str = "redis://127.0.0.1:6379/0",
    size: int = 300_000,
    compound_size: int = 7_500,
    tubes: int = 12_000,
    repeats: int = 30,
    concurrency: Sequence[int] = (16, 32, 64),
    batch_size: int = 100,
    batch_concurrency: int = 4,
    seconds: float = 8,
    seed: int = 7,
    report: bool = True,
) -> Figures:
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    with tempfile.TemporaryDirectory() as scratch:
        # The API process runs as a deployment runs it: distributed, no workers in it.
        # Without a broker (`--broker-url ''`) it runs embedded on the same PostgreSQL and
        # Redis, its bus in-process: a tube publishes no event, so the path timed is the same
        # (its idle relay and consumers share the process).
        env = {
            "CORDON_MODE": "distributed" if broker_url else "embedded",
            "CORDON_DATABASE_URL": url,
            "CORDON_REDIS_URL": redis_url,
            "CORDON_EXCHANGE": f"cordon_{prefix}",
            "CORDON_SCHEMA_PREFIX": prefix,
            "CORDON_SECRET_KEY": os.urandom(24).hex(),
            "CORDON_DATA_DIR": scratch,
        }
        if broker_url:
            env["CORDON_BROKER_URL"] = broker_url
        fields: dict[str, Any] = {k.removeprefix("CORDON_").lower(): v for k, v in env.items()}
        settings = Settings(**fields, log_json=False)
        platform = Platform(settings, [TESTING])
        try:
            await platform.start()
            schema = settings.service_schema("testing")
            say = print if report else (lambda *_: None)
            started = time.perf_counter()
            town = build_town(size=size, compound_size=compound_size, seed=seed)
            say(
                f"synthetic town: {len(town.residents):,} residents, {len(town.compounds)} "
                f"compounds, {len(town.places):,} places ({time.perf_counter() - started:.1f} s)"
            )
            resulted, open_round, copy_rate, raw_copy = await load_town(
                url, schema, town, seed=seed
            )
            say(
                f"COPY round_members: {copy_rate:,.0f} rows/s; raw COPY (unindexed): "
                f"{raw_copy:,.0f} rows/s; ratio {copy_rate / raw_copy:.2f}"
            )
            figures = Figures(
                residents=len(town.residents),
                copy_rows_per_s=copy_rate,
                raw_copy_rows_per_s=raw_copy,
                coverage=await time_coverage(platform, town, resulted, repeats=repeats),
                raw_count_ms=await raw_count(url, schema, resulted, repeats=repeats),
            )
            _report_coverage(say, figures, compound_size)
            operator = Principal(
                id="bench",
                username="bench",
                role=Role.town_operator,
                scope=Scope.of(ScopeKind.towns, towns=[town.id]),
            )
            token = issue_token(operator, secret=settings.secret_key, minutes=60)
            if tubes <= 0:
                return figures
            with cordon_serve("testing", env=env) as server:
                warmed = warm_up(
                    server, token, town, open_round, tubes=tubes, connections=concurrency[0]
                )
                await settle(url, schema)
                figures.levels, figures.batch = time_tubes(
                    server,
                    token,
                    town,
                    open_round,
                    tubes=tubes,
                    skip=warmed,
                    concurrency=concurrency,
                    batch_size=batch_size,
                    batch_concurrency=batch_concurrency,
                    seconds=seconds,
                )
            best = figures.best
            assert best is not None
            figures.raw_round_trips_per_s = await _pg.round_trip_rate(
                url, concurrency=best.connections
            )
            figures.sampled_after = await sampled_count(url, schema, open_round)
            _report_tubes(say, figures, batch_size, batch_concurrency)
            return figures
        finally:
            await platform.close()
            await _pg.drop_schemas(url, prefix)
            await _rabbit.delete_declared(platform)


def _report_coverage(say: Any, figures: Figures, compound_size: int) -> None:
    say(
        f"\ncoverage of one round ({figures.residents:,} members; goals: a {compound_size:,}-"
        "resident compound <= 50 ms, the town <= 500 ms), the service function:"
    )
    for name, timings in figures.coverage.items():
        goal = 50 if name.startswith("compound") else 500
        verdict = "ok" if timings.percentile(95) <= goal else "MISSED"
        say(f"  {name:24} {timings.summary()}  [{verdict} at p95]")
    town = figures.coverage["town by compound"].median
    say(
        f"  raw asyncpg count of the town's members: {figures.raw_count_ms:.1f} ms "
        f"(town by compound takes {town / figures.raw_count_ms:.1f}x that); "
        f"{figures.residents / (town / 1000):,.0f} members counted/s"
    )


def _report_tubes(say: Any, figures: Figures, batch_size: int, batch_concurrency: int) -> None:
    best, batch = figures.best, figures.batch
    assert best is not None and batch is not None
    say(
        "\ntube registration through the HTTP API (cordon serve -s testing, load from wrk; "
        f"goals: single tubes >= 1,000/s with p99 <= {P99_GOAL_MS} ms and >= 0.5 of GET "
        "/healthz's rate at the same concurrency); API CPU per request, a figure the rest of "
        "the machine does not blur:"
    )
    rows = [
        row
        for level in figures.levels
        for row in (
            (f"single tubes, {level.connections} connections", level.single),
            (f"GET /healthz, {level.connections} connections", level.health),
        )
    ]
    rows.append((f"batches of {batch_size}, {batch_concurrency} connections", batch))
    for name, result in rows:
        requests = max(1, result.wrk.requests)
        short = (
            f"  (every body answered in {result.wrk.seconds:.1f} s)" if result.wrk.complete else ""
        )
        say(
            f"  {name:30} {result.rate:7,.0f} tubes/s  {result.wrk.rate:7,.0f} req/s  "
            f"p50 {result.wrk.p50_ms:6.1f} ms  p99 {result.wrk.p99_ms:6.1f} ms  "
            f"API CPU {result.server_cpu_seconds / requests * 1000:5.2f} ms/req{short}"
        )
    ratios = ", ".join(f"{level.ratio:.2f} at {level.connections}" for level in figures.levels)
    ratio = max(level.ratio for level in figures.levels)
    met = best.single.rate >= 1000 and best.single.wrk.p99_ms <= P99_GOAL_MS
    say(
        f"  single tubes: {ratios} connections of GET /healthz's rate "
        f"[{'ok' if ratio >= 0.5 else 'MISSED'} at >= 0.5]; best within p99 <= "
        f"{P99_GOAL_MS} ms: {best.single.rate:,.0f}/s at {best.connections} connections "
        f"[{'ok' if met else 'MISSED'} at >= 1,000/s]; "
        f"{best.single.rate / figures.raw_round_trips_per_s:.3f} of raw asyncpg SELECT 1 round "
        f"trips ({figures.raw_round_trips_per_s:,.0f}/s, {best.connections} connections); "
        f"members sampled afterwards: {figures.sampled_after:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("CORDON_BENCH_DATABASE_URL", _pg.DEFAULT_URL)
    )
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("CORDON_BENCH_BROKER_URL", _rabbit.DEFAULT_URL),
        help="'' for an in-process bus (the API then runs embedded on PostgreSQL and Redis)",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CORDON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--compound-size", type=int, default=7_500)
    parser.add_argument("--tubes", type=int, default=12_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[16, 32, 64],
        help="wrk's connections for single tubes, each level in turn (e.g. 16,32,64)",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batch-concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8, help="length of each HTTP load")
    args = parser.parse_args()
    asyncio.run(
        run(
            url=args.url,
            broker_url=args.broker_url,
            redis_url=args.redis_url,
            size=args.size,
            compound_size=args.compound_size,
            tubes=args.tubes,
            repeats=args.repeats,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            batch_concurrency=args.batch_concurrency,
            seconds=args.seconds,
        )
    )


if __name__ == "__main__":
    main()
