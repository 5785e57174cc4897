"""The kernel's bulk helpers on both backends: COPY-speed inserts in the caller's
transaction, IN-lists of thousands, and the collector paused while bulk work runs."""

import gc
import time
import uuid
import weakref
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from cordon.platform import Platform
from services.registry.models import kernel
from shared.bulk import Rows, among, bulk_insert, paused_gc
from shared.ids import new_id, new_ids

INBOX = kernel.inbox
BEIJING = timezone(timedelta(hours=8))


async def test_bulk_insert_writes_in_the_transaction_and_rolls_back_with_it(
    platform: Platform,
) -> None:
    database = platform.runtime("registry").database
    at = datetime(2022, 4, 1, 5, 0, tzinfo=BEIJING)
    rows = [{"consumer": "c", "event_id": i, "processed_at": at} for i in new_ids(3000)]
    async with database.session() as session:
        await bulk_insert(session, INBOX, rows)
        await session.rollback()
    async with database.session() as session:
        assert (await session.execute(select(INBOX))).all() == []
        await bulk_insert(session, INBOX, rows)
        await session.commit()
    wanted = [rows[0]["event_id"], rows[-1]["event_id"], new_id()]
    query = select(INBOX.c.event_id, INBOX.c.processed_at).where(
        among(INBOX.c.event_id, "wanted", dialect=database.dialect)
    )
    async with database.session() as session:
        found = dict((await session.execute(query, {"wanted": wanted})).all())
    assert set(found) == set(wanted[:2])
    assert {stamp.astimezone(UTC) for stamp in found.values()} == {at.astimezone(UTC)}


async def test_bulk_insert_of_a_taken_key_raises_an_integrity_error(platform: Platform) -> None:
    database = platform.runtime("registry").database
    row = {"consumer": "c", "event_id": new_id(), "processed_at": datetime.now(UTC)}
    async with database.session() as session:
        await bulk_insert(session, INBOX, [row])
        await session.commit()
    async with database.session() as session:
        with pytest.raises(IntegrityError):
            await bulk_insert(session, INBOX, [row])


async def test_a_batch_of_rows_is_inserted_and_updated_by_one_statement_each(
    platform: Platform,
) -> None:
    database = platform.runtime("registry").database
    rows = Rows.of(INBOX, name="batch")
    insert = INBOX.insert().from_select(
        list(rows.columns), select(*rows.source(database.dialect).c)
    )
    ids = new_ids(40)
    at = datetime(2022, 4, 1, 5, 0, tzinfo=BEIJING)
    batch = {"consumer": ["c"] * 40, "event_id": ids, "processed_at": [at] * 40}
    later = Rows("later", {"event_id": INBOX.c.event_id.type, "at": INBOX.c.processed_at.type})
    source = later.source(database.dialect)
    move = (
        update(INBOX)
        .where(INBOX.c.event_id == source.c.event_id)
        .values(processed_at=source.c.at, consumer="moved")
    )
    async with database.session() as session:
        await session.execute(insert, rows.bind(batch, dialect=database.dialect))
        moved = await session.execute(
            move,
            later.bind(
                {"event_id": ids[:3], "at": [at + timedelta(hours=n) for n in range(3)]},
                dialect=database.dialect,
            ),
        )
        await session.commit()
    assert moved.rowcount == 3
    async with database.session() as session:
        found = {r.event_id: r for r in (await session.execute(select(INBOX))).all()}
    assert set(found) == set(ids)
    assert [found[i].processed_at.astimezone(UTC) for i in ids[:4]] == [
        (at + timedelta(hours=n)).astimezone(UTC) for n in (0, 1, 2, 0)
    ]
    assert [found[i].consumer for i in ids[2:4]] == ["moved", "c"]


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_paused_gc_nests_and_still_collects_between_batches() -> None:
    assert gc.isenabled()
    with paused_gc() as collect_young:
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
        garbage = weakref.ref(_Cycle())
        collect_young()
        assert garbage() is not None, "collected sooner than a second after the pause began"
        time.sleep(1.0)
        collect_young()
        assert garbage() is None
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_new_ids_are_version_7_distinct_and_time_ordered() -> None:
    first = new_id()
    batch = new_ids(1000)
    assert len(set(batch)) == 1000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in [first, *batch])
    # The first 48 bits are milliseconds: a later batch never sorts before an earlier id.
    assert all(i.int >> 80 >= first.int >> 80 for i in batch)
