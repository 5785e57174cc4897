"""An answer the API acknowledged survives a power loss: every SQLite database of the embedded
mode (each service's file and the bus's) commits with a full sync of the write-ahead log."""

import pytest
from sqlalchemy import text

from cordon.platform import Platform
from shared.bus.local import LocalTransport

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
