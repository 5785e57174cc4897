"""The operators' console on a large town, on PostgreSQL: the town dashboard complete and a
compound page, timed as the exact sequence of API calls each page issues.

The town is the demo town (``cordon demo``'s builder, residents through the ledger import)
of 300,000 residents by default, in 20 compounds of 15,000, carried to the testing service
over RabbitMQ by the workers. Its testing history is written straight into the testing
schema (as ``bench/testing_coverage.py`` does): two closed rounds over the town and one open,
with the field's shares of sampled, resulted and positive members, and a few hundred cases
confirmed through the cases service (their contacts generated, their units sealed by the
registry's zone policy over the bus).

Then ``cordon serve`` (every service, distributed mode, no workers) answers, and httpx replays
what the console's pages do (``dashboard.js``, ``compound.js``): the same calls, in the same
order, concurrently where the page issues them together, over at most six connections (a
browser's per-host limit), every body read to its last byte. Each call is timed alone too:
the page's time is printed beside the sum of its calls (the ratio says what the page adds,
or saves by issuing calls together) and beside a ``GET /healthz`` round trip.

    .venv/bin/python -m bench.console [--size 300000] [--repeats 30]

Goals (issue 12): the town dashboard complete ≤ 1 s p95, a compound page ≤ 300 ms p95.
"""

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench import _pg, _rabbit
from bench._server import free_port
from bench._timing import Timings
from bench.common import goal_line, machine_line
from cordon.platform import Platform
from cordon.services import ALL
from services.registry.demo import DEMO_PASSWORD, ensure_demo_town
from services.testing.cases.service import Positive, confirm_cases
from shared.auth import Principal
from shared.ids import new_id
from shared.settings import Settings

TOWN_ZONE = ZoneInfo("Asia/Shanghai")
BROWSER_CONNECTIONS = 6
# Members' statuses in a round by morning (as bench/testing_coverage.py): cumulative shares.
STATUS_SQL = """CASE
  WHEN r < 0.08 THEN 'expected' WHEN r < 0.18 THEN 'sampled'
  WHEN r < 0.183 THEN 'resample_required' WHEN r < 0.185 THEN 'retest_required'
  WHEN r < 0.1852 THEN 'positive' ELSE 'negative' END"""


@dataclass
class Page:
    name: str
    goal_ms: float
    timings: Timings
    calls: dict[str, Timings]

    def per_page(self, label: str) -> int:
        return len(self.calls[label].seconds) // len(self.timings.seconds)

    @property
    def calls_sum_ms(self) -> float:
        return sum(t.median * self.per_page(label) for label, t in self.calls.items())


def _env(prefix: str, url: str, broker: str, redis: str) -> dict[str, str]:
    return {
        "CORDON_MODE": "distributed",
        "CORDON_DATABASE_URL": url,
        "CORDON_BROKER_URL": broker,
        "CORDON_REDIS_URL": redis,
        "CORDON_EXCHANGE": f"cordon_{prefix}",
        "CORDON_SCHEMA_PREFIX": prefix,
        "CORDON_SECRET_KEY": os.urandom(24).hex(),
    }


async def _caught_up(platform: Platform, residents: int, *, within: float = 3600) -> float:
    """Seconds until the testing service's directory holds every resident."""
    started = time.perf_counter()
    schema = platform.settings.service_schema("testing")
    url = platform.settings.database_url or ""
    async with _pg.connection(url, schema=schema) as conn:
        while time.perf_counter() - started < within:
            if await conn.fetchval("SELECT count(*) FROM directory_residents") >= residents:
                return time.perf_counter() - started
            await asyncio.sleep(1)
    raise RuntimeError("the testing directory did not catch up with the registry")


async def _rounds(platform: Platform, *, seed: int) -> tuple[uuid.UUID, list[Any]]:
    """Two closed rounds and an open one over the whole town, members by INSERT … SELECT."""
    schema = platform.settings.service_schema("testing")
    url = platform.settings.database_url or ""
    now = datetime.now(UTC)
    async with _pg.connection(url, schema=schema) as conn:
        await conn.execute(f"SELECT setseed({(seed % 1000) / 1000})")
        town_id = await conn.fetchval("SELECT town_id FROM directory_residents LIMIT 1")
        ids = []
        for n, status in enumerate(("closed", "closed", "open")):
            round_id = new_id()
            starts = now - timedelta(days=2 - n, hours=6)
            await conn.execute(
                "INSERT INTO rounds (id, name, kind, status, scope, starts_at, ends_at, "
                "pool_size, created_by, created_at, opened_at, closed_at, town_id, "
                "compound_id, building_id) VALUES ($1, $2, 'pcr', $3, "
                '\'{"kind": "town", "ids": []}\', $4, $5, 10, \'bench\', $4, $4, $6, $7, '
                "NULL, NULL)",
                round_id,
                f"Bench round {n + 1}",
                status,
                starts,
                starts + timedelta(hours=12),
                starts + timedelta(hours=12) if status == "closed" else None,
                town_id,
            )
            await conn.execute(
                "INSERT INTO round_members (round_id, resident_id, household_id, unit_id, "
                "door_to_door, status, sampled_at, resulted_at, town_id, compound_id, "
                f"building_id) SELECT $1, id, household_id, unit_id, door_to_door, s, "
                "CASE WHEN s = 'expected' THEN NULL ELSE $2::timestamptz END, "
                "CASE WHEN s IN ('expected', 'sampled') THEN NULL ELSE $3::timestamptz END, "
                "town_id, compound_id, building_id FROM (SELECT *, "
                f"{STATUS_SQL} AS s FROM (SELECT *, random() AS r FROM directory_residents) "
                "AS drawn) AS members",
                round_id,
                starts + timedelta(hours=1),
                starts + timedelta(hours=8),
            )
            ids.append(round_id)
        await conn.execute("VACUUM ANALYZE round_members")
        positives = await conn.fetch(
            "SELECT resident_id, household_id, unit_id, town_id, compound_id, building_id "
            "FROM round_members WHERE round_id = $1 AND status = 'positive'",
            ids[-1],
        )
    return ids[-1], list(positives)


async def _cases(platform: Platform, round_id: uuid.UUID, positives: list[Any]) -> int:
    """Confirm the open round's positives as cases through the cases service."""
    runtime = platform.runtime("testing")
    async with runtime.uow(Principal.system("bench")) as uow:
        cases = await confirm_cases(
            uow,
            positives=[
                Positive(
                    resident_id=p["resident_id"],
                    household_id=p["household_id"],
                    unit_id=p["unit_id"],
                    town_id=p["town_id"],
                    compound_id=p["compound_id"],
                    building_id=p["building_id"],
                    round_id=round_id,
                    tube_id=new_id(),
                    tube_code=f"B{n:06d}",
                    source="retest",
                )
                for n, p in enumerate(positives)
            ],
            now=datetime.now(UTC),
        )
        await uow.commit()
    return len(cases)


async def _sealed(platform: Platform, *, within: float = 300) -> int:
    """Zones the registry's policy sealed for the cases, once it stops changing."""
    url = platform.settings.database_url or ""
    schema = platform.settings.service_schema("registry")
    seen, steady, started = -1, 0, time.perf_counter()
    async with _pg.connection(url, schema=schema) as conn:
        while time.perf_counter() - started < within:
            count = int(await conn.fetchval("SELECT count(*) FROM zones") or 0)
            steady = steady + 1 if count == seen and count > 0 else 0
            if steady >= 3:
                return count
            seen = count
            await asyncio.sleep(1)
    return seen


async def _analysed(platform: Platform) -> int:
    """Every table of every service vacuumed and analysed, as a deployment's autovacuum does
    within a minute of a fill. This machine's PostgreSQL runs without autovacuum (CI's
    settings): without this, the registry's and the directories' tables keep no statistics
    and the pages' reads are planned as if they were empty."""
    url = platform.settings.database_url or ""
    done = 0
    async with _pg.connection(url) as conn:
        for name in platform.runtimes:
            schema = platform.settings.service_schema(name)
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema
            )
            for table in tables:
                await conn.execute(f'VACUUM ANALYZE "{schema}"."{table["tablename"]}"')
                done += 1
    return done


class Console:
    """What the pages call, as they call it (see cordon/console/static/js/pages)."""

    def __init__(self, http: httpx.AsyncClient, sign_in: Callable[[], Awaitable[None]]) -> None:
        self.http = http
        # Access tokens live 15 minutes: a long run signs in again, as the console refreshes.
        self.sign_in = sign_in
        # When set, calls are timed one at a time (each alone), not together as the page.
        self.timed: dict[str, list[float]] | None = None

    async def together(self, *calls: Awaitable[Any]) -> list[Any]:
        if self.timed is None:
            return list(await asyncio.gather(*calls))
        return [await call for call in calls]

    async def get(self, label: str, path: str, **params: Any) -> Any:
        started = time.perf_counter()
        answer = await self.http.get(path, params=params or None)
        if answer.status_code == 401:
            await self.sign_in()
            return await self.get(label, path, **params)
        body = answer.json()
        if self.timed is not None:
            self.timed.setdefault(label, []).append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
        return body

    async def every(self, label: str, path: str) -> list[Any]:
        items, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = await self.get(label, path, **params)
            items += page["items"]
            if not (cursor := page["next_cursor"]):
                return items

    async def dashboard(self) -> None:
        since = datetime.now(TOWN_ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
        _, _, rounds, _, _, _, _ = await self.together(
            self.get("compounds", "/v1/compounds"),
            self.get("population by compound", "/v1/zones/population", by="compound"),
            self.get("open rounds", "/v1/rounds", status="open", limit=500),
            self.every("compound clocks", "/v1/compound-clocks"),
            self.get("cases counted", "/v1/cases/counts", since=since.isoformat()),
            self.get("requests counted", "/v1/requests/counts"),
            self.get("alerts counted", "/v1/messages/counts?state=queued&state=failed"),
        )
        await self.together(
            *(
                self.get("coverage by compound", f"/v1/rounds/{r['id']}/coverage", by="compound")
                for r in rounds["items"]
            )
        )

    async def compound(self, compound_id: str) -> None:
        # The missed lists are asked for with the page's other reads, the round's as soon as
        # the round is known (compound.js).
        async def covering_then_missed() -> None:
            coverage = await self.get(
                "open round by building and unit",
                "/v1/coverage/open-round",
                compound_id=compound_id,
            )
            if coverage["round"]:
                missed = f"/v1/rounds/{coverage['round']['id']}/missed"
                await self.get("missed (50)", missed, compound_id=compound_id, limit=50)

        await self.together(
            self.get("compound", f"/v1/compounds/{compound_id}"),
            self.get(
                "population by unit", "/v1/zones/population", compound_id=compound_id, by="unit"
            ),
            self.get("gates", f"/v1/compounds/{compound_id}/gates"),
            self.get(
                "proposals",
                "/v1/zones/proposals",
                compound_id=compound_id,
                status="pending",
                limit=100,
            ),
            self.get("zone history", "/v1/zones/history", compound_id=compound_id, limit=50),
            covering_then_missed(),
            self.get(
                "missed twice (50)", "/v1/coverage/missed-twice", compound_id=compound_id, limit=50
            ),
        )


async def _time_page(
    name: str,
    goal_ms: float,
    visit: Callable[[Console], Awaitable[None]],
    http: httpx.AsyncClient,
    sign_in: Callable[[], Awaitable[None]],
    repeats: int,
) -> Page:
    console = Console(http, sign_in)
    for _ in range(3):
        await visit(console)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        await visit(console)
        seconds.append(time.perf_counter() - started)
    # Each call alone, as many times: what the page's time is made of.
    console.timed = {}
    for _ in range(repeats):
        await visit(console)
    alone: dict[str, Timings] = {}
    for label in console.timed:
        alone[label] = Timings(console.timed[label])
    return Page(name, goal_ms, Timings(seconds), alone)


@contextlib.contextmanager
def _serve(env: dict[str, str], *, workers: int) -> Any:
    port = free_port()
    cordon = Path(sys.executable).with_name("cordon")
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [
                str(cordon),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"cordon serve did not start:\n{log.read()[-3000:]}")
                time.sleep(0.3)
            yield base
        finally:
            process.terminate()
            process.wait(30)


async def run(
    *, size: int, repeats: int, seed: int, url: str, broker: str, redis: str, api_workers: int
) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    env = _env(prefix, url, broker, redis)
    print(machine_line())
    print(f"cordon serve: every service, distributed mode, {api_workers} API process(es)")
    with tempfile.TemporaryDirectory() as scratch:
        fields: dict[str, Any] = {k.removeprefix("CORDON_").lower(): v for k, v in env.items()}
        platform = Platform(Settings(**fields, data_dir=Path(scratch), log_json=False), ALL)
        await platform.start()
        try:
            await _build(platform, size=size, seed=seed)
            with _serve(env, workers=api_workers) as base:
                pages, health = await _measure(base, repeats=repeats)
            _report(pages, health)
        finally:
            await _rabbit.delete_declared(platform)
            await platform.close()
            await _pg.drop_schemas(url, prefix)


async def _build(platform: Platform, *, size: int, seed: int) -> None:
    workers = asyncio.create_task(platform.run_workers())
    try:
        started = time.perf_counter()
        await ensure_demo_town(platform.runtime("registry"), size=size, seed=seed)
        print(
            f"demo town: {size:,} residents through the ledger import in "
            f"{time.perf_counter() - started:.1f} s"
        )
        lag = await _caught_up(platform, size)
        print(f"testing directory caught up over the bus {lag:.1f} s later")
        round_id, positives = await _rounds(platform, seed=seed)
        cases = await _cases(platform, round_id, positives)
        print(f"three rounds over the town ({3 * size:,} members), {cases} cases confirmed")
        print(f"zones sealed by the registry's policy: {await _sealed(platform)}")
        started = time.perf_counter()
        tables = await _analysed(platform)
        print(f"VACUUM ANALYZE of {tables} tables: {time.perf_counter() - started:.1f} s")
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)


async def _measure(base: str, *, repeats: int) -> tuple[list[Page], Timings]:
    limits = httpx.Limits(max_connections=BROWSER_CONNECTIONS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:

        async def sign_in() -> None:
            signed = await http.post(
                "/v1/auth/token", data={"username": "operator", "password": DEMO_PASSWORD}
            )
            http.headers["Authorization"] = f"Bearer {signed.json()['access_token']}"

        await sign_in()
        population = (await http.get("/v1/zones/population", params={"by": "compound"})).json()
        people: dict[str, int] = {}
        for row in population:
            people[row["compound_id"]] = people.get(row["compound_id"], 0) + row["people"]
        largest = max(people, key=lambda c: people[c])
        health = Timings([])
        for _ in range(repeats):
            begun = time.perf_counter()
            await http.get("/healthz")
            health.seconds.append(time.perf_counter() - begun)
        pages = [
            await _time_page("town dashboard", 1000, Console.dashboard, http, sign_in, repeats),
            await _time_page(
                f"compound page ({people[largest]:,} residents)",
                300,
                lambda c: c.compound(largest),
                http,
                sign_in,
                repeats,
            ),
        ]
    return pages, health


def _report(pages: list[Page], health: Timings) -> None:
    print("timed with httpx: the pages' exact calls, <= 6 connections, bodies read to the end")
    print(f"{'GET /healthz (baseline round trip)':<58} {health.summary()}")
    for page in pages:
        print(f"\n{page.name:<58} {page.timings.summary()}")
        for label, timing in page.calls.items():
            times = page.per_page(label)
            print(f"  {label + f' (x{times})':<56} median {timing.median:7.1f} ms")
        ratio = page.timings.median / page.calls_sum_ms if page.calls_sum_ms else 0.0
        to_health = page.timings.median / health.median
        print(
            f"  {'sum of its calls, one after another (medians)':<56} {page.calls_sum_ms:7.1f} ms"
        )
        print(f"  {'ratio: page median / sum of its calls':<56} {ratio:7.2f}")
        print(f"  {'ratio: page median / GET /healthz median':<56} {to_health:7.1f}")
        met = page.timings.percentile(95) <= page.goal_ms
        print(goal_line(f"{page.name} <= {page.goal_ms:.0f} ms p95", met))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--api-workers", type=int, default=1, help="cordon serve --workers")
    parser.add_argument("--database-url", default=_pg.DEFAULT_URL)
    parser.add_argument("--broker-url", default=_rabbit.DEFAULT_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(
        run(
            size=args.size,
            repeats=args.repeats,
            seed=args.seed,
            url=args.database_url,
            broker=args.broker_url,
            redis=args.redis_url,
            api_workers=args.api_workers,
        )
    )


if __name__ == "__main__":
    main()
