"""Cells a spreadsheet shows as written: every export (CSV or .xlsx) goes through here.

Two dangers, one place. A cell beginning with ``=``, ``+``, ``-`` or ``@`` (or a tab or a
carriage return before one) is run as a formula by Excel and LibreOffice when a CSV is opened
(spreadsheet formula injection): CSV cells that begin so are prefixed with an apostrophe, which
the spreadsheet hides and our own imports take off again (:func:`csv_value`). In .xlsx a cell
is a formula only when its type says so, so cells are written typed as text instead and keep
their value; a count or a quantity is written as a number, so a committee can sum its column;
a time is written as text, as the JSON API states it (pydantic's serialiser: UTC as ``Z``).
And XML (hence .xlsx) cannot hold most control characters: input refuses them
(``shared.fields.FreeText``); what was stored before is written with U+FFFD in their place."""

import csv
import io
import re
from collections.abc import AsyncIterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from pydantic import TypeAdapter

SheetFormat = Literal["csv", "xlsx"]
MEDIA_TYPES: dict[SheetFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# What XML 1.0 cannot carry (tab, line feed and carriage return it can), lone surrogates
# (no encoding carries them) and the two non-characters at the end of the BMP.
UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISER = "'"
# A cell as an export gives it: text (codes, phones and document numbers stay text, their
# leading zeros kept), a count or a quantity, or a time.
Cell = str | int | Decimal | datetime
# Times through the serialiser that writes them in every JSON answer, so a file and the API
# state the same instant in the same words.
_MOMENT = TypeAdapter(datetime)


def cell_text(value: str) -> str:
    """The value with what a spreadsheet cannot hold replaced by U+FFFD."""
    return UNPRINTABLE.sub("\ufffd", value)


def csv_cell(value: str) -> str:
    """A CSV cell no spreadsheet runs as a formula."""
    value = cell_text(value)
    return NEUTRALISER + value if value.startswith(FORMULA_START) else value


def csv_value(cell: str) -> str:
    """What :func:`csv_cell` wrote, as it was: for imports that read our exports back."""
    if cell.startswith(NEUTRALISER) and cell[1:].startswith(FORMULA_START):
        return cell[1:]
    return cell


async def write_sheet(
    out: IO[bytes],
    *,
    sheet_format: SheetFormat,
    title: str,
    columns: Sequence[str],
    rows: AsyncIterable[Sequence[Cell]],
) -> int:
    """Write the header and the rows to ``out``; returns the number of rows."""
    if sheet_format == "csv":
        return await _write_csv(out, columns=columns, rows=rows)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    sheet.append([_xlsx_cell(sheet, c) for c in columns])
    count = 0
    async for cells in rows:
        sheet.append([_xlsx_cell(sheet, c) for c in cells])
        count += 1
    workbook.save(out)
    return count


async def _write_csv(
    out: IO[bytes], *, columns: Sequence[str], rows: AsyncIterable[Sequence[Cell]]
) -> int:
    # A BOM, so Excel reads UTF-8 (Chinese names) rather than the machine's code page.
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow([csv_cell(c) for c in columns])
    count = 0
    async for cells in rows:
        texts = (_as_written(c) for c in cells)
        writer.writerow([csv_cell(c) if isinstance(c, str) else str(c) for c in texts])
        count += 1
    text.detach()
    return count


def _as_written(value: Cell) -> str | int | Decimal:
    """A time as the API states it; any other cell as it is."""
    return str(_MOMENT.dump_python(value, mode="json")) if isinstance(value, datetime) else value


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: Cell) -> WriteOnlyCell:
    value = _as_written(value)
    if not isinstance(value, str):
        # A number, summed and sorted as one (a Decimal keeps its exact digits).
        return WriteOnlyCell(sheet, value)
    cell = WriteOnlyCell(sheet, cell_text(value))
    # openpyxl makes any string starting with "=" a formula; as text it is shown, not run.
    cell.data_type = "s"
    return cell


def file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    """A written sheet's bytes for a streaming response, closing the file once sent."""
    try:
        while chunk := file.read(1 << 16):
            yield chunk
    finally:
        file.close()
