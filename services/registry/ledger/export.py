"""Exporting residents in the ledger's own columns, so an export imports back unchanged."""

import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from services.registry.models import Building, Compound, Household, Resident, Unit, mask_to_tags
from shared.db import AnySelect
from shared.spreadsheets import SheetFormat, write_sheet
from shared.uow import UnitOfWork

COLUMNS = (
    "compound",
    "building",
    "unit",
    "room",
    "household",
    "name",
    "document_type",
    "document_number",
    "phone",
    "birth_date",
    "sex",
    "tags",
    "care_notes",
)
PAGE = 10_000
ExportFormat = SheetFormat


def _query(compound_id: Any) -> AnySelect:
    unit = aliased(Unit)
    query = (
        select(
            Resident.id,
            Compound.code,
            Building.code,
            unit.code,
            Household.room,
            Household.code,
            Resident.name,
            Resident.document_type,
            Resident.document_number,
            Resident.phone,
            Resident.birth_date,
            Resident.sex,
            Resident.tags,
            Resident.care_notes,
        )
        .join(Household, Household.id == Resident.household_id)
        .join(Building, Building.id == Resident.building_id)
        .join(Compound, Compound.id == Resident.compound_id)
        .outerjoin(unit, unit.id == Resident.unit_id)
    )
    if compound_id is not None:
        query = query.where(Resident.compound_id == compound_id)
    return query


async def rows(uow: UnitOfWork, *, compound_id: Any = None) -> AsyncIterator[tuple[Any, list[str]]]:
    """Every visible resident's id and ledger cells, in pages ordered by id."""
    last = None
    while True:
        query = _query(compound_id)
        if last is not None:
            query = query.where(Resident.id > last)
        page = (await uow.session.execute(query.order_by(Resident.id).limit(PAGE))).all()
        for record in page:
            yield record[0], _cells(record)
        if len(page) < PAGE:
            return
        last = page[-1][0]


def _cells(record: Any) -> list[str]:
    (
        _,
        compound,
        building,
        unit,
        room,
        household,
        name,
        doc_type,
        doc,
        phone,
        born,
        sex,
        tags,
        notes,
    ) = record
    return [
        compound,
        building,
        unit or "",
        room or "",
        household,
        name,
        doc_type,
        doc,
        phone or "",
        born.isoformat() if born else "",
        sex or "",
        ";".join(mask_to_tags(tags)),
        notes or "",
    ]


async def write(
    uow: UnitOfWork, *, export_format: ExportFormat, compound_id: Any = None
) -> tuple[IO[bytes], list[Any]]:
    """The export in a temporary file (spilled to disk when large), and the ids of the
    residents it shows (for the access log)."""
    # Closed by the response once streamed.
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115
    shown: list[Any] = []

    async def cells() -> AsyncIterator[list[str]]:
        async for resident_id, row in rows(uow, compound_id=compound_id):
            shown.append(resident_id)
            yield row

    await write_sheet(
        out, sheet_format=export_format, title="residents", columns=COLUMNS, rows=cells()
    )
    out.seek(0)
    return out, shown
