"""The benchmarks keep running: the ledger-import bench on a few hundred rows against the
real PostgreSQL (its baseline is a raw COPY), and help-request creation through a served
logistics API under wrk on a small town. Figures are for `make bench` to judge, so no
timing is asserted here."""

import contextlib
import io
import re

import asyncpg
import pytest

from bench import import_residents
from tests.conftest import AMQP_URL, skip_unless_reachable

ROWS = 300


@pytest.mark.services
async def test_the_import_bench_imports_every_row_prints_rates_and_cleans_up(
    postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORDON_BENCH_DATABASE_URL", postgresql_url)
    out = io.StringIO()
    imported = await import_residents.measure_rate(ROWS, out)
    peak_mb = await import_residents.measure_memory(ROWS, out)
    printed = out.getvalue()

    assert imported.report.status == "applied"
    assert imported.report.inserted == ROWS
    assert re.search(rf"ledger import .* {ROWS} residents in .* residents/s", printed)
    assert re.search(rf"ledger import in the child .* {ROWS} residents in .* residents/s", printed)
    assert re.search(r"raw COPY, like residents, bare .* rows/s", printed)
    assert re.search(r"raw COPY, like residents, with indexes and keys .* rows/s", printed)
    assert re.search(r"ratio to raw COPY, like residents, bare .* \(1 : ", printed)
    assert len(re.findall(r"^goal: .* (PASS|MISS)$", printed, re.MULTILINE)) == 3
    assert peak_mb > 0 and f"{peak_mb:.0f} MB" in printed

    prefixes = re.findall(r"schemas (bench_\w+_)\*", printed)
    assert len(prefixes) == 2
    dsn = postgresql_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        left = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE ANY($1::text[])",
            [f"{prefix}%" for prefix in prefixes],
        )
    finally:
        await connection.close()
    assert left == []


@pytest.mark.services
async def test_the_notify_broadcast_bench_sends_every_message_once_and_prints_ratios(
    postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import notify_broadcast

    skip_unless_reachable("RabbitMQ")
    monkeypatch.setenv("CORDON_BENCH_DATABASE_URL", postgresql_url)
    out = io.StringIO()
    # The bench itself stops with an error unless each message was handed exactly once.
    figures = await notify_broadcast.run(count=500, out=out, compound=200, samples=5)
    printed = out.getvalue()

    assert figures.messages_per_second > 0 and figures.latency_p95_ms > 0
    assert re.search(r"handed to the gateway, state recorded \(sent\) .* 500 msgs in", printed)
    assert re.search(r"ratio to raw confirmed publishes .* \(1 : ", printed)
    assert re.search(r"ratio to raw COPY, like messages, bare .* \(1 : ", printed)
    assert len(re.findall(r"^goal: .* (PASS|MISS)$", printed, re.MULTILINE)) == 3


async def test_the_alert_latency_bench_times_each_sealing_from_its_upload(
    postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import notify_alert_latency

    skip_unless_reachable("RabbitMQ")
    monkeypatch.setenv("CORDON_BENCH_DATABASE_URL", postgresql_url)
    out = io.StringIO()
    # The bench stops with an error unless each resident got the sealing once.
    p50, p95 = await notify_alert_latency.run(runs=2, out=out, broker_url=AMQP_URL)
    printed = out.getvalue()

    assert 0 < p50 <= p95
    assert re.search(
        r"upload → case → sealed → rule → SMS handed \(p50 / p95\) +\d+ / \d+ ms", printed
    )
    assert "on PostgreSQL and RabbitMQ" in printed
    assert re.search(
        r"^goal: p95 ≤ 1 s from a positive result upload .*(PASS|MISS)$", printed, re.M
    )


async def test_the_request_creation_bench_stores_every_request_it_posts_and_cleans_up(
    postgresql_url: str,
) -> None:
    from bench import logistics_requests
    from tests.conftest import AMQP_URL, REDIS_URL, skip_unless_reachable

    # wrk is required, as for the tube bench's test: .ci/run installs it.
    skip_unless_reachable("RabbitMQ", "Redis")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        figures = await logistics_requests.run(
            url=postgresql_url,
            broker_url=AMQP_URL,
            redis_url=REDIS_URL,
            residents=500,
            requests=60,
            connections=4,
            seconds=2,
        )
    printed = out.getvalue()
    # Every body was posted within the time and answered 201 (wrk fails on any other
    # answer), and each was stored once: fresh Idempotency-Keys make fresh requests.
    assert figures.create.wrk.complete and figures.posted == 6 + 60
    assert figures.stored == figures.posted
    assert figures.health.wrk.requests > 0
    assert re.search(r"POST /v1/requests +[\d,]+ req/s .* p99 +[\d.]+ ms", printed)
    assert re.search(r"requests created: [\d.]+ of GET /healthz's rate \[(ok|MISSED)", printed)
    dsn = postgresql_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        left = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = $1", figures.schema
        )
    finally:
        await connection.close()
    assert figures.schema and left == []


@pytest.mark.services
async def test_the_plan_bench_plans_every_household_prints_rates_and_cleans_up(
    postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import logistics_plan

    monkeypatch.setenv("CORDON_BENCH_DATABASE_URL", postgresql_url)
    out = io.StringIO()
    planned = await logistics_plan.measure(2_000, out, compound_size=1_000)
    printed = out.getvalue()

    # Every household of the town gets its package; infants' formula adds rows.
    assert planned.households > 500 and planned.rows > planned.households
    assert planned.events == 2  # one logistics.distribution.planned per compound
    assert re.search(rf"plan over the town .* {planned.households:,} households in", printed)
    assert re.search(r"raw COPY of the allocation rows, bare .* rows/s", printed)
    assert re.search(r"ratio to raw COPY of the allocation rows, bare .* \(1 : ", printed)
    assert re.search(r"^goal: >= 50,000 households/s .* (PASS|MISS)$", printed, re.MULTILINE)

    [prefix] = re.findall(r"schemas (bench_\w+_)\*", printed)
    dsn = postgresql_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        left = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{prefix}%"
        )
    finally:
        await connection.close()
    assert left == []


@pytest.mark.services
async def test_the_scoped_statements_bench_reads_only_the_callers_rows_and_prints_ratios(
    postgresql_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import scoped_statements

    # The bench itself stops with an error if the scope let another compound's row through.
    figures = await scoped_statements.run(url=postgresql_url, rows=300, statements=30)
    printed = capsys.readouterr().out

    assert all(ms > 0 for ms in figures.values()) and len(figures) == 6
    assert re.search(r"Core, built per call, scoped +[\d.]+ ms .*[\d.]+x raw", printed)
    assert len(re.findall(r"scoped : unscoped = [\d.]+ \[", printed)) == 2
    dsn = postgresql_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        left = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_scoped_%'"
        )
    finally:
        await connection.close()
    assert left == []
