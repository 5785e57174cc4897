"""Help-request creation through the HTTP API, on PostgreSQL, beside GET /healthz.

Loads a synthetic town's residents (20,000 by default, some tagged) into the logistics
service's directory with COPY, runs `cordon serve -s logistics` on 127.0.0.1 as a deployment
runs it (distributed: PostgreSQL, RabbitMQ, Redis), and drives it with wrk: every POST
/v1/requests carries a new body (a resident, a kind, details) and its own Idempotency-Key,
as building leaders' phones send them; then GET /healthz at the same concurrency, in the same
run, for the HTTP stack's own ceiling. Prints the rate, the ratio to /healthz and the
latencies, and checks that every request answered 201 was stored once.

    .venv/bin/python -m bench.logistics_requests [--residents 20000] [--requests 6000]

Goals (issue 10): >= 0.5 of GET /healthz's rate, p99 <= 50 ms.
"""

import argparse
import asyncio
import os
import random
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import _pg, _rabbit, _wrk
from bench._server import Server, cordon_serve
from bench.testing_coverage import RESIDENT_COLUMNS, build_town, resident_rows
from cordon.platform import Platform
from services.logistics.app import SPEC as LOGISTICS
from shared.auth import Principal, Role, Scope, ScopeKind, issue_token
from shared.settings import Settings

TAGS = ("[]", "[]", "[]", '["infant"]', '["dialysis"]', '["living_alone", "elderly"]')
KINDS = (
    {"kind": "groceries"},
    {"kind": "baby_supplies"},
    {"kind": "medicine_run", "hospital": "Town People's Hospital"},
    {"kind": "medical_transport", "reason": "dialysis", "hospital": "Dialysis centre"},
    {"kind": "other"},
)


@dataclass
class Load:
    """What wrk measured for one kind of request, and the API process's CPU time meanwhile."""

    wrk: _wrk.WrkResult
    server_cpu_seconds: float

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_seconds / max(1, self.wrk.requests) * 1000


@dataclass
class Figures:
    residents: int
    create: Load
    health: Load
    stored: int
    # Answered 201, warm-up included.
    posted: int
    raw_round_trips_per_s: float
    # The service's schema, dropped at the end of the run.
    schema: str = ""
    # Whether every POST carried an Idempotency-Key of its own (--no-keys: none did).
    keys: bool = True

    @property
    def ratio(self) -> float:
        return self.create.wrk.rate / self.health.wrk.rate


def directory_rows(residents: int, seed: int) -> tuple[uuid.UUID, list[tuple[Any, ...]]]:
    """The testing benchmark's synthetic town (households, buildings, compounds), with a
    field-like share of tags that move a request's priority."""
    town = build_town(size=residents, compound_size=min(residents, 7_500), seed=seed)
    rng = random.Random(seed)
    rows = []
    for row in resident_rows(town, seed):
        tags = rng.choice(TAGS)
        rows.append((*row[:7], tags, *row[8:]))
    return town.id, rows


def bodies(rows: list[tuple[Any, ...]], count: int, *, start: int) -> list[dict[str, Any]]:
    """`count` distinct requests, residents and kinds in turn."""
    found = []
    for n in range(start, start + count):
        resident = rows[n % len(rows)][0]
        found.append(
            {"resident_id": str(resident), "details": f"request {n}", **KINDS[n % len(KINDS)]}
        )
    return found


def load(
    server: Server,
    path: str,
    *,
    connections: int,
    seconds: float,
    sent: Sequence[dict[str, Any]] = (),
    token: str = "",
    keys: str = "",
) -> Load:
    cpu = server.cpu_seconds()
    result = _wrk.run(
        server.base,
        path,
        method="POST" if sent else "GET",
        bodies=sent,
        token=token,
        connections=connections,
        seconds=seconds,
        idempotency_prefix=keys,
    )
    return Load(result, server.cpu_seconds() - cpu)


async def stored(url: str, schema: str) -> int:
    async with _pg.connection(url, schema=schema) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM help_requests"))


async def run(
    *,
    url: str = _pg.DEFAULT_URL,
    broker_url: str = _rabbit.DEFAULT_URL,
    redis_url: str = "redis://127.0.0.1:6379/0",
    residents: int = 20_000,
    requests: int = 6_000,
    connections: int = 16,
    seconds: float = 8,
    seed: int = 11,
    keys: bool = True,
    report: bool = True,
) -> Figures:
    say = print if report else (lambda *_: None)
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    env = {
        "CORDON_MODE": "distributed",
        "CORDON_DATABASE_URL": url,
        "CORDON_BROKER_URL": broker_url,
        "CORDON_REDIS_URL": redis_url,
        "CORDON_EXCHANGE": f"cordon_{prefix}",
        "CORDON_SCHEMA_PREFIX": prefix,
        "CORDON_SECRET_KEY": os.urandom(24).hex(),
    }
    with tempfile.TemporaryDirectory() as scratch:
        fields: dict[str, Any] = {k.removeprefix("CORDON_").lower(): v for k, v in env.items()}
        settings = Settings(**fields, data_dir=Path(scratch), log_json=False)
        platform = Platform(settings, [LOGISTICS])
        try:
            await platform.start()
            schema = settings.service_schema("logistics")
            town_id, rows = directory_rows(residents, seed)
            async with _pg.connection(url, schema=schema) as conn:
                await _pg.copy(conn, "directory_residents", RESIDENT_COLUMNS, rows)
                await conn.execute("ANALYZE directory_residents")
            operator = Principal(
                id="bench",
                username="bench",
                role=Role.town_operator,
                scope=Scope.of(ScopeKind.towns, towns=[town_id]),
            )
            token = issue_token(operator, secret=settings.secret_key, minutes=60)
            warmup = max(1, min(500, requests // 10))
            with cordon_serve("logistics", env=env) as server:
                warm = load(
                    server,
                    "/v1/requests",
                    sent=bodies(rows, warmup, start=0),
                    token=token,
                    keys=f"{prefix}w" if keys else "",
                    connections=connections,
                    seconds=2,
                )
                create = load(
                    server,
                    "/v1/requests",
                    sent=bodies(rows, requests, start=warmup),
                    token=token,
                    keys=f"{prefix}c" if keys else "",
                    connections=connections,
                    seconds=seconds,
                )
                health = load(server, "/healthz", connections=connections, seconds=seconds)
            figures = Figures(
                residents=len(rows),
                create=create,
                health=health,
                stored=await stored(url, schema),
                posted=warm.wrk.requests + create.wrk.requests,
                raw_round_trips_per_s=await _pg.round_trip_rate(url, concurrency=connections),
                schema=schema,
                keys=keys,
            )
            _report(say, figures, connections=connections)
            return figures
        finally:
            await platform.close()
            await _pg.drop_schemas(url, prefix)
            await _rabbit.delete_declared(platform)


def _report(say: Any, figures: Figures, *, connections: int) -> None:
    create, health = figures.create, figures.health
    sent = (
        "a new body and Idempotency-Key per request"
        if figures.keys
        else "a new body per request, no Idempotency-Key"
    )
    say(
        f"help-request creation through the HTTP API (cordon serve -s logistics, "
        f"{figures.residents:,} residents in its directory, wrk with {connections} "
        f"connections, {sent}; goals: >= 0.5 of GET /healthz's rate in the same run, "
        "p99 <= 50 ms):"
    )
    for name, result in (("POST /v1/requests", create), ("GET /healthz", health)):
        short = (
            f"  (every body answered in {result.wrk.seconds:.1f} s)" if result.wrk.complete else ""
        )
        say(
            f"  {name:18} {result.wrk.rate:7,.0f} req/s  p50 {result.wrk.p50_ms:6.1f} ms  "
            f"p90 {result.wrk.p90_ms:6.1f} ms  p99 {result.wrk.p99_ms:6.1f} ms  "
            f"API CPU {result.cpu_ms_per_request:5.2f} ms/req{short}"
        )
    ratio_ok = figures.ratio >= 0.5
    p99_ok = create.wrk.p99_ms <= 50
    say(
        f"  requests created: {figures.ratio:.2f} of GET /healthz's rate "
        f"[{'ok' if ratio_ok else 'MISSED'} at >= 0.5]; p99 {create.wrk.p99_ms:.1f} ms "
        f"[{'ok' if p99_ok else 'MISSED'} at <= 50 ms]; "
        f"{create.wrk.rate / figures.raw_round_trips_per_s:.3f} of raw asyncpg SELECT 1 round "
        f"trips ({figures.raw_round_trips_per_s:,.0f}/s)"
    )
    say(
        f"  stored: {figures.stored:,} requests; answered 201: {figures.posted:,} (warm-up "
        "included; a request in flight when a load ends is stored unanswered)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("CORDON_BENCH_DATABASE_URL", _pg.DEFAULT_URL)
    )
    parser.add_argument(
        "--broker-url", default=os.environ.get("CORDON_BENCH_BROKER_URL", _rabbit.DEFAULT_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CORDON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--residents", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=6_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8, help="length of each HTTP load")
    parser.add_argument(
        "--no-keys", action="store_true", help="post without Idempotency-Key (what they cost)"
    )
    args = parser.parse_args()
    asyncio.run(
        run(
            url=args.url,
            broker_url=args.broker_url,
            redis_url=args.redis_url,
            residents=args.residents,
            requests=args.requests,
            connections=args.connections,
            seconds=args.seconds,
            keys=not args.no_keys,
        )
    )


if __name__ == "__main__":
    main()
