"""Making a broadcast's messages on PostgreSQL: a compound of 7,500 residents in the request,
and a town of 300,000 through the ``broadcast-enqueue`` job after a second operator's
approval, against a raw COPY of the same message rows into a table shaped like ``messages``.

    python -m bench.notify_broadcasts [--compound 7500] [--town 300000]

The notify directory is filled directly (this measures making messages, not the projection);
the broadcasts go through the services behind ``POST /v1/broadcasts`` and its approval, as
town operators, and commit. Handing the messages to a gateway is the delivery benchmark's.
"""

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import func, select

from bench.common import (
    Rate,
    emit,
    fetch_records,
    goal_line,
    machine_line,
    pg_platform,
    raw_copy,
    stopwatch,
    unique_prefix,
)
from services.notify.broadcasts import schemas
from services.notify.broadcasts import service as broadcasts
from services.notify.models import DirectoryPlace, DirectoryResident, Message
from shared.auth import Principal, Role, Scope, ScopeKind
from shared.bulk import bulk_insert
from shared.db import table_of
from shared.ids import new_ids
from shared.service import ServiceRuntime

GOAL_COMPOUND_SECONDS = 1.0
PER_COMPOUND = 7_500
MESSAGE_COLUMNS = tuple(table_of(Message).columns.keys())


def operator(town_id: uuid.UUID, name: str) -> Principal:
    scope = Scope.of(ScopeKind.towns, towns=[town_id])
    return Principal(id=name, username=name, role=Role.town_operator, scope=scope)


async def fill_directory(
    runtime: ServiceRuntime, *, town_id: uuid.UUID, residents: int
) -> list[uuid.UUID]:
    """Compounds of 7,500 residents (one building each), one in ten in English, one in
    twenty opted out, one in fifty without a mobile; returns the compounds' ids."""
    compounds = new_ids(max(1, -(-residents // PER_COMPOUND)))
    now = datetime.now(UTC)
    places = [
        {
            "id": c,
            "kind": "compound",
            "town_id": town_id,
            "committee_id": None,
            "compound_id": c,
            "building_id": None,
            "parent_id": None,
            "code": f"C{n}",
            "name": f"Compound {n}",
            "position": 0,
        }
        for n, c in enumerate(compounds)
    ]
    rows: list[dict[str, Any]] = [
        {
            "id": resident_id,
            "household_id": resident_id,
            "unit_id": None,
            "name": "居民",
            "document_number": "x",
            "phone": None if n % 50 == 0 else f"+86138{n:08d}",
            "birth_date": None,
            "tags": [],
            "door_to_door": False,
            "language": "en" if n % 10 == 0 else "zh-CN",
            "opted_out": n % 20 == 0,
            "updated_at": now,
            "town_id": town_id,
            "committee_id": None,
            "compound_id": compounds[n // PER_COMPOUND],
            "building_id": compounds[n // PER_COMPOUND],
            "position": 0,
        }
        for n, resident_id in enumerate(new_ids(residents))
    ]
    async with runtime.uow(Principal.system()) as uow:
        await bulk_insert(uow.session, table_of(DirectoryPlace), places)
        for start in range(0, len(rows), 50_000):
            await bulk_insert(
                uow.session, table_of(DirectoryResident), rows[start : start + 50_000]
            )
        await uow.commit()
    return compounds


def body(town_id: uuid.UUID, scope: dict[str, Any]) -> schemas.BroadcastCreate:
    start = datetime.now(UTC) + timedelta(hours=8)
    return schemas.BroadcastCreate.model_validate(
        {
            "town_id": town_id,
            "scope": scope,
            "template_key": "round_scheduled",
            "variables": {
                "round": "全员核酸",
                "start": start.isoformat(),
                "end": (start + timedelta(hours=6)).isoformat(),
            },
            "priority": "high",
            "valid_until": (start + timedelta(hours=4)).isoformat(),
        }
    )


async def messages_of(runtime: ServiceRuntime, broadcast_id: uuid.UUID) -> int:
    async with runtime.uow(Principal.system()) as uow:
        query = (
            select(func.count()).select_from(Message).where(Message.broadcast_id == broadcast_id)
        )
        return int(await uow.session.scalar(query) or 0)


async def compound_broadcast(
    runtime: ServiceRuntime, town_id: uuid.UUID, compound: uuid.UUID
) -> Rate:
    with stopwatch() as elapsed:
        async with runtime.uow(operator(town_id, "operator")) as uow:
            created = await broadcasts.create(
                uow, data=body(town_id, {"kind": "compounds", "ids": [compound]})
            )
            await uow.commit()
            broadcast_id = created.id
    made = await messages_of(runtime, broadcast_id)
    return Rate("compound broadcast, in the request (create + commit)", made, elapsed[0], "msgs")


async def town_broadcast(runtime: ServiceRuntime, town_id: uuid.UUID) -> tuple[Rate, float]:
    async with runtime.uow(operator(town_id, "operator")) as uow:
        created = await broadcasts.create(uow, data=body(town_id, {"kind": "town"}))
        await uow.commit()
        broadcast_id = created.id
    with stopwatch() as approval:
        async with runtime.uow(operator(town_id, "operator-2")) as uow:
            await broadcasts.approve(uow, broadcast_id=broadcast_id)
            await uow.commit()
    [job] = [j for j in runtime.spec.periodic if j.name == "broadcast-enqueue"]
    with stopwatch() as elapsed:
        while True:
            async with runtime.uow(Principal.system()) as uow:
                broadcast = await broadcasts.get(uow, broadcast_id)
                if broadcast.status != "enqueuing":
                    break
            await runtime.tick(job)
    made = await messages_of(runtime, broadcast_id)
    return Rate("town-wide broadcast, by the enqueue job", made, elapsed[0], "msgs"), approval[0]


async def run(*, compound: int, town: int, out: TextIO) -> None:
    prefix = unique_prefix("notify")
    async with pg_platform(("notify",), prefix=prefix) as platform:
        runtime = platform.runtime("notify")
        schema = platform.settings.service_schema("notify")
        town_id = uuid.uuid4()
        compounds = await fill_directory(runtime, town_id=town_id, residents=max(compound, town))
        emit(out, machine_line())
        small = await compound_broadcast(runtime, town_id, compounds[0])
        emit(
            out,
            small.line(),
            goal_line(
                f"a compound in ≤ {GOAL_COMPOUND_SECONDS:g} s",
                small.seconds <= GOAL_COMPOUND_SECONDS,
            ),
        )
        large, approval = await town_broadcast(runtime, town_id)
        emit(out, large.line(), f"{'  the approval request took':<58} {approval:10.2f} s")
        records = await fetch_records(schema, "messages", MESSAGE_COLUMNS)
        copied = await raw_copy(
            label="raw COPY of those messages into a table like messages",
            schema=schema,
            like="messages",
            columns=MESSAGE_COLUMNS,
            records=[r for r in records][: large.count],
            full=True,
        )
        emit(out, copied.line())
        for rate in (small, large):
            ratio = rate.per_second / copied.per_second
            emit(
                out, f"{'  ' + rate.label.split(',')[0] + ': ratio to raw COPY':<58} {ratio:10.3f}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compound", type=int, default=PER_COMPOUND)
    parser.add_argument("--town", type=int, default=300_000)
    options = parser.parse_args(argv)
    asyncio.run(run(compound=options.compound, town=options.town, out=sys.stdout))


if __name__ == "__main__":
    main()
