"""Importing the base ledger on PostgreSQL: residents/s against a raw COPY of the same rows,
and the peak memory of a process importing a million-row file.

    python -m bench.import_residents [--rows 100000] [--memory-rows 1000000]

The ledger comes from the demo generator over a demo layout of places, built in fresh
schemas that are dropped afterwards; it goes through ``import_ledger``, the function behind
``POST /v1/imports/residents``, as a town operator, outbox events included, and commits.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select, text

from bench.common import (
    LABEL,
    Rate,
    Scheduling,
    emit,
    fetch_records,
    goal_line,
    machine_line,
    own_peak_rss_mb,
    pg_platform,
    ratio_line,
    raw_copy,
    run_child,
    scheduling,
    stopwatch,
    unique_prefix,
)
from services.registry.demo import LedgerBuilding, bootstrap_town, build_places, write_ledger
from services.registry.ledger import service as ledger_service
from services.registry.ledger.schemas import ImportReport
from services.registry.models import Resident, kernel
from shared.auth import Principal, Role, Scope, ScopeKind
from shared.contracts.registry import ResidentsImported
from shared.db import table_of
from shared.service import ServiceRuntime

GOAL_RATE = 25_000
GOAL_SHARE_OF_COPY = 0.1
GOAL_PEAK_RSS_MB = 300
SEED = 7
SERVICES = ("registry",)
RESIDENT_COLUMNS = tuple(table_of(Resident).columns.keys())


@dataclass(frozen=True)
class Imported:
    report: ImportReport
    seconds: float
    # This process's main thread, and the PostgreSQL backend when it runs on this machine.
    process: Scheduling | None
    backend: Scheduling | None


async def prepare_town(
    runtime: ServiceRuntime, *, size: int
) -> tuple[uuid.UUID, list[LedgerBuilding]]:
    """A town and the demo layout of places for ``size`` residents."""
    town_id = await bootstrap_town(
        runtime,
        town_code="BENCH",
        town_name="Bench Street",
        username="bench-operator",
        password="bench-operator-password",
    )
    async with runtime.uow(Principal.system("bench")) as uow:
        layout = await build_places(uow, town_id=town_id, size=size, seed=SEED)
        await uow.commit()
    return town_id, layout


def write_file(path: Path, *, layout: list[LedgerBuilding], size: int) -> int:
    with path.open("w", encoding="utf-8", newline="") as out:
        return write_ledger(out, layout=layout, size=size, seed=SEED)


def town_operator(town_id: uuid.UUID) -> Principal:
    """The principal a town operator's token carries (see auth.service.scope_of)."""
    scope = Scope.of(ScopeKind.towns, towns=[town_id])
    return Principal(id="bench", username="bench-operator", role=Role.town_operator, scope=scope)


async def import_file(runtime: ServiceRuntime, *, path: Path, town_id: uuid.UUID) -> Imported:
    """The endpoint's work on an uploaded file: import_ledger, then the boundary's commit."""
    async with runtime.uow(town_operator(town_id)) as uow:
        pids = (os.getpid(), await uow.session.scalar(text("SELECT pg_backend_pid()")))
        before = [scheduling(pid) for pid in pids]
        with path.open("rb") as file, stopwatch() as elapsed:
            report = await ledger_service.import_ledger(uow, file=file, filename=path.name)
            if report.status != "applied":
                raise RuntimeError(f"the ledger was refused: {report.errors[:5]}")
            await uow.commit()
        after = [scheduling(pid) for pid in pids]
    process, backend = (
        b - a if a is not None and b is not None else None
        for a, b in zip(before, after, strict=True)
    )
    return Imported(report, elapsed[0], process, backend)


async def outbox_events(runtime: ServiceRuntime) -> int:
    outbox = kernel.outbox
    query = select(func.count()).where(outbox.c.routing_key == ResidentsImported.type)
    async with runtime.uow(Principal.system("bench")) as uow:
        return int(await uow.session.scalar(query) or 0)


async def measure_rate(rows: int, out: TextIO) -> Imported:
    prefix = unique_prefix("import")
    emit(
        out, f"ledger import on PostgreSQL, {rows:,} residents (schemas {prefix}*)", machine_line()
    )
    async with pg_platform(SERVICES, prefix=prefix) as platform:
        runtime = platform.runtime("registry")
        town_id, layout = await prepare_town(runtime, size=rows)
        with tempfile.TemporaryDirectory(prefix="cordon-bench-") as folder:
            path = Path(folder) / "ledger.csv"
            write_file(path, layout=layout, size=rows)
            size_mb = path.stat().st_size / 2**20
            imported = await import_file(runtime, path=path, town_id=town_id)
        events = await outbox_events(runtime)
        schema = platform.settings.service_schema("registry")
        records = await fetch_records(schema, "residents", RESIDENT_COLUMNS)
        copies = [
            await raw_copy(
                label=f"raw COPY, like residents, {shape}",
                schema=schema,
                like="residents",
                columns=RESIDENT_COLUMNS,
                records=records,
                full=shape != "bare",
            )
            for shape in ("bare", "with indexes and keys")
        ]
    report = imported.report
    label = "ledger import (parse, check, write, outbox)"
    rate = Rate(label, report.inserted, imported.seconds, "residents")
    emit(
        out,
        f"file: {size_mb:.1f} MB CSV; {report.households_created:,} households created; "
        f"{events} {ResidentsImported.type} events (batches of {ledger_service.BATCH:,})",
        rate.line(),
        *_cpu_lines(imported),
        *(copy.line() for copy in copies),
        *(ratio_line(rate, copy) for copy in copies),
        goal_line(f">= {GOAL_RATE:,} residents/s", rate.per_second >= GOAL_RATE),
        goal_line(
            f">= {GOAL_SHARE_OF_COPY:g} of a raw COPY (bare)",
            rate.per_second >= GOAL_SHARE_OF_COPY * copies[0].per_second,
        ),
    )
    return imported


def _cpu_lines(imported: Imported) -> list[str]:
    """Where the wall time went: each side's time on a CPU and waiting for a free one."""
    return [
        f"{'  ' + who:<{LABEL}} {'not visible here' if seen is None else seen.text()}"
        for who, seen in (
            ("this process", imported.process),
            ("its PostgreSQL backend", imported.backend),
        )
    ]


async def measure_memory(rows: int, out: TextIO) -> float:
    """Import ``rows`` residents in a child process; return its peak RSS in MB."""
    prefix = unique_prefix("memory")
    emit(out, f"peak memory of a process importing {rows:,} residents (schemas {prefix}*)")
    async with pg_platform(SERVICES, prefix=prefix) as platform:
        town_id, layout = await prepare_town(platform.runtime("registry"), size=rows)
        with tempfile.TemporaryDirectory(prefix="cordon-bench-") as folder:
            path = Path(folder) / "ledger.csv"
            write_file(path, layout=layout, size=rows)
            argv = [__spec__.name, "--child", str(path), "--prefix", prefix]
            child = await asyncio.to_thread(run_child, [*argv, "--town-id", str(town_id)])
    rate = Rate("ledger import in the child", child["inserted"], child["seconds"], "residents")
    peak = float(child["peak_rss_mb"])
    emit(
        out,
        rate.line(),
        f"{'peak RSS of the child':<{LABEL}} {peak:10.0f} MB"
        f"  (after start-up: {child['startup_rss_mb']:.0f} MB)",
        goal_line(f"peak RSS < {GOAL_PEAK_RSS_MB} MB", peak < GOAL_PEAK_RSS_MB),
    )
    return peak


async def child_import(path: Path, *, prefix: str, town_id: uuid.UUID) -> None:
    async with pg_platform(SERVICES, prefix=prefix, owner=False) as platform:
        startup = own_peak_rss_mb()
        imported = await import_file(platform.runtime("registry"), path=path, town_id=town_id)
    result = {
        "inserted": imported.report.inserted,
        "seconds": imported.seconds,
        "startup_rss_mb": startup,
        "peak_rss_mb": own_peak_rss_mb(),
    }
    print(json.dumps(result), flush=True)


async def run(*, rows: int, memory_rows: int, out: TextIO) -> None:
    if rows:
        await measure_rate(rows, out)
    if memory_rows:
        await measure_memory(memory_rows, out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.import_residents", description=__doc__)
    parser.add_argument("--rows", type=_size, default=100_000, help="residents for the rate")
    parser.add_argument(
        "--memory-rows", type=_size, default=1_000_000, help="residents for peak memory; 0 skips"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--town-id", type=uuid.UUID, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        work = child_import(options.child, prefix=options.prefix, town_id=options.town_id)
    else:
        work = run(rows=options.rows, memory_rows=options.memory_rows, out=sys.stdout)
    asyncio.run(work)


def _size(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value != 0 and not 100 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError("between 100 and 1,000,000 residents, or 0 to skip")
    return value


if __name__ == "__main__":
    main()
