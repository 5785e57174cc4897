"""What a durable commit costs in the embedded mode: SQLite with ``synchronous=FULL`` (every
commit syncs the write-ahead log) against ``NORMAL`` (syncs at checkpoints only), measured in
the same run on the same disk.

    python -m bench.sqlite_durability [--rows 20000] [--commits 300]

Two paths: the ledger import (one transaction per upload, as ``POST /v1/imports/residents``)
and small acknowledged writes (one transaction per request with an outbox event, as a lab
result or a help request), each on a fresh embedded platform.
"""

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from bench.common import LABEL, Rate, emit, machine_line, ratio_line, stopwatch
from bench.import_residents import SERVICES, prepare_town, town_operator, write_file
from cordon.platform import Platform
from cordon.services import named
from services.registry.ledger import service as ledger_service
from shared import db
from shared.auth import Principal
from shared.contracts.registry import SnapshotStarted
from shared.ids import new_id
from shared.settings import Settings


async def measure(mode: str, *, rows: int, commits: int) -> tuple[Rate, Rate]:
    db.SQLITE_SYNCHRONOUS = mode
    with tempfile.TemporaryDirectory(prefix="cordon-bench-") as folder:
        settings = Settings(data_dir=Path(folder) / "data", log_json=False)
        platform = Platform(settings, named(list(SERVICES)))
        await platform.start()
        try:
            runtime = platform.runtime("registry")
            town_id, layout = await prepare_town(runtime, size=rows)
            path = Path(folder) / "ledger.csv"
            write_file(path, layout=layout, size=rows)
            with path.open("rb") as file, stopwatch() as imported:
                async with runtime.uow(town_operator(town_id)) as uow:
                    report = await ledger_service.import_ledger(uow, file=file, filename=path.name)
                    await uow.commit()
            with stopwatch() as written:
                for _ in range(commits):
                    async with runtime.uow(Principal.system("bench")) as uow:
                        uow.emit(SnapshotStarted(resync_id=new_id(), town_ids=[town_id]))
                        await uow.commit()
        finally:
            await platform.close()
    return (
        Rate(f"ledger import, synchronous={mode}", report.inserted, imported[0], "residents"),
        Rate(f"one-event commits, synchronous={mode}", commits, written[0], "commits"),
    )


async def run(*, rows: int, commits: int, out: TextIO) -> None:
    emit(
        out,
        f"embedded SQLite: {rows:,}-resident import and {commits} small commits",
        machine_line(),
    )
    normal = await measure("NORMAL", rows=rows, commits=commits)
    full = await measure("FULL", rows=rows, commits=commits)
    for before, after in zip(normal, full, strict=True):
        emit(out, before.line(), after.line(), ratio_line(after, before))
    emit(out, f"{'(a ratio of 1 means a durable commit costs nothing there)':<{LABEL}}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_durability", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=300)
    arguments = parser.parse_args()
    asyncio.run(run(rows=arguments.rows, commits=arguments.commits, out=sys.stdout))


if __name__ == "__main__":
    main()
