"""The embedded mode's SQLite databases: an answer the API acknowledged survives a power loss
(each service's file and the bus's commits with a full sync of the write-ahead log), and work
stopped in the middle of a statement leaves nothing behind that the process's exit would wait
for."""

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from cordon.platform import Platform
from shared.bus.local import LocalTransport
from shared.db import Database

# PRAGMA synchronous answers a number: 1 is NORMAL (a commit may be lost), 2 is FULL.
FULL = 2


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
async def test_every_sqlite_connection_commits_durably_in_wal_mode(platform: Platform) -> None:
    assert isinstance(platform.transport, LocalTransport)
    databases = [r.database for r in platform.runtimes.values()]
    databases.append(platform.transport.database)
    assert {d.is_sqlite for d in databases} == {True}
    for database in databases:
        # Each connection the pool opens, not only the first: close the pooled ones twice.
        for _ in range(2):
            await database.engine.dispose()
            async with database.engine.connect() as connection:
                assert (await connection.scalar(text("PRAGMA synchronous"))) == FULL, database.url
                assert (await connection.scalar(text("PRAGMA journal_mode"))) == "wal"


# About a second of SQLite's own work, in its thread: long enough to be stopped in the middle.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000000) "
    "SELECT count(*) FROM c"
)


async def test_work_stopped_mid_statement_leaves_nothing_waiting(tmp_path: Path) -> None:
    """A worker stopped while its statement runs (the embedded process shutting down: the
    supervisor cancels its tasks, then the process cancels what is left) has its connection
    closed, and no task is left waiting for ever: the process's exit waits for every task."""
    database = Database(url=f"sqlite+aiosqlite:///{tmp_path / 'work.db'}", schema="work")
    before = asyncio.all_tasks()
    running = asyncio.Event()

    async def work() -> None:
        async with database.session() as session:
            await session.execute(text("SELECT 1"))
            running.set()
            await session.execute(text(SLOW))

    task = asyncio.create_task(work())
    await running.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    # Cancelled again while the connection is being closed, as at shutdown.
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # Whatever the statement's thread still had to do is done by now.
    await asyncio.sleep(3)
    left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
    assert [t for t in left if not t.done()] == []
    await database.dispose()
