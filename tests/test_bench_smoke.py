"""The benchmarks keep running: the ledger-import bench on a few hundred rows against the
real PostgreSQL (its baseline is a raw COPY). Figures are for `make bench` to judge, so no
timing is asserted here."""

import io
import re

import asyncpg
import pytest

from bench import import_residents

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
