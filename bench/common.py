"""What every benchmark shares: a throwaway platform on PostgreSQL, the raw ceilings measured
in the same run (COPY), a child process's peak memory, and the printed figures.

Benchmarks print rates and their ratios to the raw infrastructure of the same run, so a slow
machine or a busy neighbour moves both sides; they are never timed tests.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import asyncpg

from bench import _pg, _rabbit
from cordon.platform import Platform
from cordon.services import named
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    return os.environ.get("CORDON_BENCH_DATABASE_URL", _pg.DEFAULT_URL)


# Width of the label column of every printed line.
LABEL = 58


@dataclass(frozen=True)
class Rate:
    label: str
    count: int
    seconds: float
    unit: str = "rows"

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        return (
            f"{self.label:<{LABEL}} {self.count:>10,} {self.unit} in {self.seconds:7.2f} s"
            f"  = {self.per_second:>10,.0f} {self.unit}/s"
        )


def ratio_line(rate: Rate, baseline: Rate) -> str:
    ratio = rate.per_second / baseline.per_second
    return f"{'  ratio to ' + baseline.label:<{LABEL}} {ratio:10.3f}  (1 : {1 / ratio:.1f})"


def goal_line(goal: str, met: bool) -> str:
    return f"{'goal: ' + goal:<{LABEL}} {'PASS' if met else 'MISS':>10}"


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yields a one-item list that holds the elapsed seconds once the block ends."""
    elapsed = [0.0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - start


def unique_prefix(name: str) -> str:
    return f"bench_{name}_{uuid.uuid4().hex[:8]}_"


def pg_settings(prefix: str, *, data_dir: Path, broker_url: str | None = None) -> Settings:
    """PostgreSQL, and RabbitMQ when ``broker_url`` is given (an exchange of the prefix's)."""
    return Settings(
        database_url=database_url(),
        schema_prefix=prefix,
        data_dir=data_dir,
        secret_key="bench-secret-" + "x" * 40,
        log_json=False,
        broker_url=broker_url,
        exchange=f"{prefix}events",
    )


@asynccontextmanager
async def pg_platform(
    services: Sequence[str], *, prefix: str, owner: bool = True, broker_url: str | None = None
) -> AsyncIterator[Platform]:
    """The services on PostgreSQL in schemas named by ``prefix``. The owner migrates them
    and drops them afterwards; a child process measuring the same schemas passes owner=False.
    """
    with tempfile.TemporaryDirectory(prefix="cordon-bench-") as data_dir:
        settings = pg_settings(prefix, data_dir=Path(data_dir), broker_url=broker_url)
        platform = Platform(settings, named(list(services)))
        try:
            await platform.start(migrate=owner)
            yield platform
        finally:
            await platform.close()
            if owner:
                await drop_schemas(settings.service_schema(s) for s in services)
                # Left behind, a run's quorum queues hold the broker's file handles.
                await _rabbit.delete_declared(platform)


def asyncpg_dsn() -> str:
    return _pg.asyncpg_dsn(database_url())


async def drop_schemas(schemas: Iterable[str]) -> None:
    async with _pg.connection(database_url()) as connection:
        for schema in schemas:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def fetch_records(schema: str, table: str, columns: Sequence[str]) -> list[Any]:
    """Rows of a table, ready to COPY again (for a raw COPY of the rows just written)."""
    async with _pg.connection(database_url()) as connection:
        names = ", ".join(f'"{c}"' for c in columns)
        return list(await connection.fetch(f'SELECT {names} FROM "{schema}"."{table}"'))


async def raw_copy(
    *,
    label: str,
    schema: str,
    like: str,
    columns: Sequence[str],
    records: Sequence[Any],
    full: bool,
) -> Rate:
    """Time a COPY of ``records`` into a scratch table shaped like ``schema.like``: bare (its
    columns only), or in full (its indexes, constraints and foreign keys too); then drop it.

    Bare is the database's ceiling; in full is the floor that the table's design sets for
    any import into it, however fast the importer.
    """
    scratch = f'"{schema}"."bench_copy_{like}"'
    source = f'"{schema}"."{like}"'
    copied = "INCLUDING DEFAULTS" + (" INCLUDING CONSTRAINTS INCLUDING INDEXES" if full else "")
    connection = await asyncpg.connect(asyncpg_dsn())
    try:
        await connection.execute(f"CREATE TABLE {scratch} (LIKE {source} {copied})")
        if full:
            # LIKE leaves foreign keys out.
            keys = await connection.fetch(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = $1::regclass AND contype = 'f'",
                source,
            )
            for (definition,) in keys:
                await connection.execute(f"ALTER TABLE {scratch} ADD {definition}")
        with stopwatch() as elapsed:
            await connection.copy_records_to_table(
                f"bench_copy_{like}", records=records, columns=list(columns), schema_name=schema
            )
        await connection.execute(f"DROP TABLE {scratch}")
    finally:
        await connection.close()
    return Rate(label, len(records), elapsed[0])


def run_child(argv: Sequence[str]) -> dict[str, Any]:
    """Run ``python -m <argv>`` from the repository; return its last stdout line (JSON)."""
    done = subprocess.run(
        [sys.executable, "-m", *argv], stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def own_peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program.

    Linux's VmHWM, not getrusage's ru_maxrss: a child started by vfork and exec (as
    subprocess does) inherits its parent's ru_maxrss, so a big parent would hide its child.
    """
    with suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class Scheduling:
    """A local process's time on a CPU and waiting for one (Linux schedstat)."""

    running: float
    waiting: float

    def __sub__(self, earlier: "Scheduling") -> "Scheduling":
        return Scheduling(self.running - earlier.running, self.waiting - earlier.waiting)

    def text(self) -> str:
        return f"{self.running:.2f} s on a CPU, {self.waiting:.2f} s waiting for one"


def scheduling(pid: int) -> Scheduling | None:
    """None when the process cannot be seen (a database on another host or in a container)."""
    try:
        running, waiting, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return None
    return Scheduling(int(running) / 1e9, int(waiting) / 1e9)


def machine_line() -> str:
    """Figures from a shared machine mean little without how busy it was."""
    one, five, _ = os.getloadavg()
    return f"machine: {os.cpu_count()} cores, load average {one:.1f} (1 min), {five:.1f} (5 min)"


def emit(out: TextIO, *lines: str) -> None:
    for line in lines:
        print(line, file=out, flush=True)
