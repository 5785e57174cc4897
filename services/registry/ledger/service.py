"""Importing the base ledger: a whole file applies, or nothing does.

The file streams through the parser in batches; each batch resolves its places, creates the
households it names, and inserts or updates residents by document number, all in the
request's transaction. Any error stops the writing (parsing goes on, to report every bad row)
and the boundary rolls the transaction back. The same file applied twice changes nothing the
second time, and a re-import of equal rows changes nothing either. One event per batch.

A batch's writes (a COPY on PostgreSQL) and its event go on while the next batch is parsed,
so the database and the parser work at the same time; reads wait for the previous writes.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

from sqlalchemy import Select, bindparam, select, update

from services.registry.ledger import schemas
from services.registry.ledger.parse import (
    NO_RESIDENTS,
    LedgerFormatError,
    LedgerRow,
    RowError,
    iter_ledger,
)
from services.registry.models import (
    Building,
    Compound,
    Household,
    LedgerImport,
    Resident,
    ResidentMove,
    Unit,
    mask_to_tags,
    tags_to_mask,
)
from shared.auth import UNSCOPED
from shared.authz import MANAGERS, Place, policy
from shared.bulk import among, bulk_insert, paused_gc
from shared.contracts.registry import HouseholdRecord, ResidentRecord, ResidentsImported
from shared.db import table_of
from shared.directory.seen import inside_scope
from shared.ids import new_id, new_ids
from shared.problems import Invalid
from shared.uow import UnitOfWork
from shared.uploads import file_digest

T = TypeVar("T")
R = TypeVar("R")

BATCH = 5_000
# Rows parsed (or made into event records) between two chances for the writes under way to
# go on: a COPY advances only when the event loop runs, a socket's worth of rows at a time,
# so longer slices leave the database waiting (500 rows cost a tenth of the rate).
PARSE_SLICE = 50
MAX_ERRORS = 1_000
RESIDENT_FIELDS = ("name", "document_type", "phone", "birth_date", "sex", "tags", "care_notes")


@dataclass(frozen=True, slots=True)
class Placement:
    town_id: uuid.UUID
    compound_id: uuid.UUID
    building_id: uuid.UUID
    unit_id: uuid.UUID | None


# Managers import into the compounds they manage (the directory of places holds no other).
IMPORT = policy("ledger imports", "import", *MANAGERS)


@dataclass
class Directory:
    """The places the caller may import into, by code."""

    compounds: dict[str, tuple[uuid.UUID, uuid.UUID]]
    buildings: dict[tuple[Any, str], uuid.UUID]
    units: dict[tuple[Any, str], uuid.UUID]
    committees: dict[uuid.UUID, uuid.UUID]
    # Buildings that have units: there a household is identified within its unit.
    with_units: set[Any] = field(default_factory=set)
    # A ledger names a few thousand places for up to a million rows.
    known: dict[tuple[str, str, str | None], Placement] = field(default_factory=dict)

    def place(self, row: LedgerRow) -> Placement | list[RowError]:
        key = (row.compound, row.building, row.unit)
        known = self.known.get(key)
        if known is not None:
            return known
        placement = self._resolve(row)
        if isinstance(placement, Placement):
            self.known[key] = placement
        return placement

    def _resolve(self, row: LedgerRow) -> Placement | list[RowError]:
        compound = self.compounds.get(row.compound)
        if compound is None:
            message = f"no compound with code {row.compound!r} in your scope"
            return [RowError(row.row, "compound", message)]
        compound_id, town_id = compound
        building_id = self.buildings.get((compound_id, row.building))
        if building_id is None:
            message = f"no building {row.building!r} in compound {row.compound}"
            return [RowError(row.row, "building", message)]
        unit_id = None
        if row.unit:
            unit_id = self.units.get((building_id, row.unit))
            if unit_id is None:
                message = f"no unit {row.unit!r} in building {row.building}"
                return [RowError(row.row, "unit", message)]
        elif building_id in self.with_units:
            # Household 101 of which unit? Each unit numbers its own households.
            message = (
                f"building {row.building} has units: give the unit of household {row.household}"
            )
            return [RowError(row.row, "unit", message)]
        return Placement(town_id, compound_id, building_id, unit_id)

    def common_place(self, *, fallback: uuid.UUID) -> Place:
        """Where an import is placed: what its rows' compounds have in common, so that an
        import into one committee's compounds shows to no other committee."""
        placements = list(self.known.values())
        town_id = placements[0].town_id if placements else fallback
        return Place.common(
            (Place(p.town_id, self.committees[p.compound_id], p.compound_id) for p in placements),
            town_id=town_id,
        )


async def load_directory(uow: UnitOfWork) -> Directory:
    session = uow.session
    rows = (
        await session.execute(
            select(Compound.id, Compound.town_id, Compound.code, Compound.committee_id)
        )
    ).all()
    compounds = {code: (cid, tid) for cid, tid, code, _ in rows}
    committees = {cid: committee for cid, _, _, committee in rows}
    buildings = {
        (cid, code): bid
        for bid, cid, code in await session.execute(
            select(Building.id, Building.compound_id, Building.code)
        )
    }
    units = {
        (bid, code): uid
        for uid, bid, code in await session.execute(select(Unit.id, Unit.building_id, Unit.code))
    }
    return Directory(compounds, buildings, units, committees, with_units={b for b, _ in units})


# A household is identified by its code within its unit, or its building without units; the
# resident's unit is the household's, as both come from the same row.
HouseholdKey = tuple[uuid.UUID | None, uuid.UUID | None, str]


def _household_key(row: LedgerRow, place: Placement) -> HouseholdKey:
    return (place.building_id, place.unit_id, row.household)


@dataclass
class Tally:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    households_created: int = 0
    errors: list[RowError] = field(default_factory=list)


def _imports(uow: UnitOfWork) -> Select[LedgerImport]:
    """The imports the caller may read: those placed inside their scope. One placed above it
    (the town office's file over two committees' compounds) counts the whole file's rows and
    keeps no tally per compound, so it has no part to show them; their residents of it they
    read as residents."""
    return select(LedgerImport).where(inside_scope(uow, LedgerImport))


async def recent_imports(uow: UnitOfWork) -> list[LedgerImport]:
    """The last 200 imports, newest first."""
    query = _imports(uow).order_by(LedgerImport.created_at.desc()).limit(200)
    return list(await uow.session.scalars(query))


async def get_import(uow: UnitOfWork, import_id: uuid.UUID) -> LedgerImport:
    where = inside_scope(uow, LedgerImport)
    return await uow.get(LedgerImport, import_id, what="import", where=where)


async def import_ledger(uow: UnitOfWork, *, file: BinaryIO, filename: str) -> schemas.ImportReport:
    IMPORT.check_role(uow)
    sha256 = file_digest(file)
    # Only a file of their own is a duplicate: the same as one above their scope imports their
    # rows (and names the rest as outside it), telling nothing of the other's.
    previous = await uow.session.scalar(
        _imports(uow).where(LedgerImport.sha256 == sha256, LedgerImport.status == "applied")
    )
    if previous is not None:
        return schemas.ImportReport(
            id=previous.id,
            filename=filename,
            status="duplicate",
            rows=previous.rows,
            inserted=0,
            updated=0,
            unchanged=previous.rows,
        )
    try:
        rows = iter_ledger(file, filename=filename, max_errors=MAX_ERRORS)
    except LedgerFormatError as exc:
        raise Invalid(str(exc), errors=[{"row": 1, "column": None, "message": str(exc)}]) from exc
    import_id = new_id()
    tally = Tally()
    directory = await load_directory(uow)
    importer = _Importer(uow, directory, import_id, tally)
    with paused_gc() as collect_young:
        try:
            batch_number = 0
            async for batch in _batches(rows, tally):
                batch_number += 1
                await importer.apply(batch, batch_number)
                collect_young()
        except LedgerFormatError as exc:
            tally.errors.append(RowError(tally.rows + 1, None, str(exc)))
        finally:
            await importer.settle()
    if tally.errors:
        return _report(None, filename, "rejected", tally)
    if not tally.rows:
        # A header alone is a mistake (the wrong sheet, an unsaved template), not an import.
        raise Invalid(NO_RESIDENTS, errors=[{"row": 2, "column": None, "message": NO_RESIDENTS}])
    place = directory.common_place(fallback=next(iter(uow.scope.towns), None) or uuid.UUID(int=0))
    IMPORT.check(uow, place)
    uow.session.add(_ledger_import(uow, import_id, filename, sha256, tally, place))
    return _report(import_id, filename, "applied", tally)


async def _batches(
    rows: Iterator[LedgerRow | RowError], tally: Tally
) -> AsyncIterator[list[LedgerRow]]:
    batch: list[LedgerRow] = []
    for item in rows:
        if isinstance(item, RowError):
            tally.errors.append(item)
            continue
        tally.rows += 1
        batch.append(item)
        if len(batch) % PARSE_SLICE == 0:
            await asyncio.sleep(0)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _ledger_import(
    uow: UnitOfWork,
    import_id: uuid.UUID,
    filename: str,
    sha256: str,
    tally: Tally,
    place: Place,
) -> LedgerImport:
    return LedgerImport(
        id=import_id,
        **place.columns(),
        filename=filename[:255],
        sha256=sha256,
        status="applied",
        rows=tally.rows,
        inserted=tally.inserted,
        updated=tally.updated,
        unchanged=tally.unchanged,
        errors=[],
        created_by=uow.principal.username,
        created_at=datetime.now(UTC),
    )


def _report(
    import_id: uuid.UUID | None, filename: str, status: Any, tally: Tally
) -> schemas.ImportReport:
    return schemas.ImportReport(
        id=import_id,
        filename=filename,
        status=status,
        rows=tally.rows,
        inserted=tally.inserted if import_id else 0,
        updated=tally.updated if import_id else 0,
        unchanged=tally.unchanged if import_id else 0,
        households_created=tally.households_created if import_id else 0,
        errors=[
            schemas.RowErrorOut(row=e.row, column=e.column, message=e.message) for e in tally.errors
        ],
    )


class _Queries:
    """The lookups every batch runs, built once (see ``among``)."""

    def __init__(self, dialect: str) -> None:
        self.households = select(
            Household.id, Household.building_id, Household.unit_id, Household.code
        ).where(
            among(Household.building_id, "buildings", dialect=dialect),
            among(Household.code, "codes", dialect=dialect),
        )
        residents = table_of(Resident)
        self.residents = select(residents).where(
            among(residents.c.document_number, "documents", dialect=dialect)
        )


@dataclass
class _Writes:
    """One batch's changes, computed before any of them is written."""

    households: list[dict[str, Any]] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)


class _Importer:
    def __init__(
        self, uow: UnitOfWork, directory: Directory, import_id: uuid.UUID, tally: Tally
    ) -> None:
        self.uow = uow
        self.directory = directory
        self.import_id = import_id
        self.tally = tally
        self.now = datetime.now(UTC)
        self._queries = _Queries(uow.dialect)
        self._writing: asyncio.Task[None] | None = None

    async def apply(self, batch: list[LedgerRow], number: int) -> None:
        placed: list[tuple[LedgerRow, Placement]] = []
        for row in batch:
            placement = self.directory.place(row)
            if isinstance(placement, list):
                self.tally.errors.extend(placement)
            else:
                placed.append((row, placement))
        if self.tally.errors:
            return
        # Made while the previous batch is written: all but what the reads below decide.
        ids = iter(new_ids(len(placed)))
        drafts = await _sliced(placed, lambda item: self._values(*item, next(ids)))
        # This batch's reads must see the previous batch's writes.
        await self.settle()
        writes = _Writes()
        households = await self._households(placed, writes)
        await self._residents(placed, drafts, households, writes)
        if self.tally.errors:
            return
        # The database writes this batch while its event is made and the next batch parsed.
        writing = self._writing = asyncio.create_task(self._write(writes))
        changed = writes.inserts + writes.updates
        if changed:
            residents = await _sliced(changed, _record)
            created = [HouseholdRecord.model_validate(h) for h in writes.households]
            event = ResidentsImported(
                import_id=self.import_id, batch=number, residents=residents, households=created
            )
            self.uow.emit(event)
        self._writing = asyncio.create_task(self._write_events_after(writing))

    async def settle(self) -> None:
        """Wait for the writes under way; their failure is the import's."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def _write_events_after(self, writing: asyncio.Task[None]) -> None:
        await writing
        await self.uow.flush_events()

    async def _households(
        self, placed: list[tuple[LedgerRow, Placement]], writes: _Writes
    ) -> dict[HouseholdKey, Any]:
        wanted = {_household_key(row, p): (row, p) for row, p in placed}
        buildings = {b for b, _, _ in wanted}
        codes = {c for _, _, c in wanted}
        found = await self.uow.session.execute(
            self._queries.households, {"buildings": list(buildings), "codes": list(codes)}
        )
        known: dict[HouseholdKey, Any] = {
            (b, u, c): hid for hid, b, u, c in found if (b, u, c) in wanted
        }
        ids = iter(new_ids(len(wanted) - len(known)))
        for key, (row, p) in wanted.items():
            if key not in known:
                household_id = known[key] = next(ids)
                writes.households.append(
                    {
                        "id": household_id,
                        "town_id": p.town_id,
                        "compound_id": p.compound_id,
                        "building_id": p.building_id,
                        "unit_id": p.unit_id,
                        "code": row.household,
                        "room": row.room,
                    }
                )
        self.tally.households_created += len(writes.households)
        return known

    async def _residents(
        self,
        placed: list[tuple[LedgerRow, Placement]],
        drafts: list[dict[str, Any]],
        households: dict[HouseholdKey, Any],
        writes: _Writes,
    ) -> None:
        existing = await self._existing({row.document_number for row, _ in placed})
        for (row, place), values in zip(placed, drafts, strict=True):
            values["household_id"] = households[_household_key(row, place)]
            current = existing.get(row.document_number)
            if current is None:
                writes.inserts.append(values)
            elif not self.uow.scope.allows(
                town_id=current.town_id,
                compound_id=current.compound_id,
                building_id=current.building_id,
            ):
                message = "this person is registered in a compound outside your scope"
                self.tally.errors.append(RowError(row.row, "document_number", message))
            elif _differs(current, values):
                values["id"] = current.id
                values["registered_at"] = current.registered_at
                writes.updates.append(values)
                if current.household_id != values["household_id"]:
                    writes.moves.append(self._move(current, values))
            else:
                self.tally.unchanged += 1
        self.tally.inserted += len(writes.inserts)
        self.tally.updated += len(writes.updates)

    async def _existing(self, documents: set[str]) -> dict[str, Any]:
        # Document numbers are unique town-wide: look beyond the scope, then refuse rows
        # that would touch someone outside it.
        rows = await self.uow.session.execute(
            self._queries.residents, {"documents": list(documents)}, execution_options=UNSCOPED
        )
        return {r.document_number: r for r in rows}

    def _values(self, row: LedgerRow, place: Placement, resident_id: uuid.UUID) -> dict[str, Any]:
        """The resident's row as inserted; its household is filled in once looked up."""
        return {
            "id": resident_id,
            "town_id": place.town_id,
            "compound_id": place.compound_id,
            "building_id": place.building_id,
            "unit_id": place.unit_id,
            "household_id": None,
            "name": row.name,
            "document_type": row.document_type.value,
            "document_number": row.document_number,
            "phone": row.phone,
            "birth_date": row.birth_date,
            "sex": row.sex.value if row.sex else None,
            "tags": tags_to_mask(row.tags),
            "care_notes": row.care_notes,
            "registered_at": self.now,
            "updated_at": self.now,
        }

    def _move(self, current: Any, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": new_id(),
            "town_id": values["town_id"],
            "compound_id": values["compound_id"],
            "building_id": values["building_id"],
            "resident_id": current.id,
            "from_household_id": current.household_id,
            "to_household_id": values["household_id"],
            "reason": f"ledger import {self.import_id}",
            "moved_by": self.uow.principal.username,
            "moved_at": self.now,
        }

    async def _write(self, writes: _Writes) -> None:
        session = self.uow.session
        table = table_of(Resident)
        await bulk_insert(session, table_of(Household), writes.households)
        await bulk_insert(session, table, writes.inserts)
        if writes.updates:
            updates = writes.updates
            columns = list(updates[0])
            statement = (
                update(table)
                .where(table.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in columns if c not in ("id", "registered_at")})
            )
            await session.execute(
                statement, [{**u, "_id": u["id"]} for u in updates], execution_options=UNSCOPED
            )
        await bulk_insert(session, table_of(ResidentMove), writes.moves)


def _differs(current: Any, values: dict[str, Any]) -> bool:
    if current.household_id != values["household_id"] or current.unit_id != values["unit_id"]:
        return True
    return any(getattr(current, f) != values[f] for f in RESIDENT_FIELDS)


async def _sliced(items: Sequence[T], make: Callable[[T], R]) -> list[R]:
    """``make`` of every item, letting the writes under way go on every PARSE_SLICE items."""
    made: list[R] = []
    for start in range(0, len(items), PARSE_SLICE):
        made += [make(item) for item in items[start : start + PARSE_SLICE]]
        await asyncio.sleep(0)
    return made


def _record(values: dict[str, Any]) -> ResidentRecord:
    # Straight from the row's values: an ORM object per row would cost more than the write.
    return ResidentRecord(
        id=values["id"],
        household_id=values["household_id"],
        town_id=values["town_id"],
        compound_id=values["compound_id"],
        building_id=values["building_id"],
        unit_id=values["unit_id"],
        name=values["name"],
        document_number=values["document_number"],
        phone=values["phone"],
        birth_date=values["birth_date"],
        tags=mask_to_tags(values["tags"]),
        language=values.get("language", "zh-CN"),
        opted_out=values.get("opted_out", False),
    )
