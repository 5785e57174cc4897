"""Streaming parser and validator of the base ledger (CSV or XLSX), without a database.

The ledger is what a committee already keeps in Excel: one row per resident, with the
compound, building, unit, room and household they live in. Files reach a million rows,
so rows are read, checked and handed on one at a time.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from operator import itemgetter
from typing import BinaryIO, cast

import openpyxl

from services.registry.documents import (
    DocumentType,
    InvalidDocument,
    InvalidPhone,
    Sex,
    normalize_phone,
    parse_id_card,
    validate_document,
)
from shared.spreadsheets import NEUTRALISER, csv_value

NO_RESIDENTS = "the file has no residents"


class LedgerFormatError(ValueError):
    """The file as a whole cannot be read as a ledger; no row of it can be trusted."""


@dataclass(slots=True, frozen=True)
class LedgerRow:
    row: int
    compound: str
    building: str
    unit: str | None
    room: str | None
    household: str
    name: str
    document_type: DocumentType
    document_number: str
    phone: str | None
    birth_date: date | None
    sex: Sex | None
    tags: tuple[str, ...]
    care_notes: str | None


@dataclass(slots=True, frozen=True)
class RowError:
    """A problem with one field of one row; `row` is the spreadsheet row (header = 1)."""

    row: int
    column: str | None
    message: str


class _RowBuilder:
    """Builds a LedgerRow in a quarter of the time of its generated __init__.

    A frozen dataclass sets every field through object.__setattr__ (about 2 µs, a third of
    the time budget of a row); this twin has the same slots, so it sets them directly and
    then becomes a LedgerRow (CPython allows that between identical slot layouts).
    """

    __slots__ = LedgerRow.__slots__

    def __init__(
        self,
        row: int,
        compound: str,
        building: str,
        unit: str | None,
        room: str | None,
        household: str,
        name: str,
        document_type: DocumentType,
        document_number: str,
        phone: str | None,
        birth_date: date | None,
        sex: Sex | None,
        tags: tuple[str, ...],
        care_notes: str | None,
    ) -> None:
        self.row = row
        self.compound = compound
        self.building = building
        self.unit = unit
        self.room = room
        self.household = household
        self.name = name
        self.document_type = document_type
        self.document_number = document_number
        self.phone = phone
        self.birth_date = birth_date
        self.sex = sex
        self.tags = tags
        self.care_notes = care_notes


FIELDS = (
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
REQUIRED = ("compound", "building", "household", "name", "document_number")
TAGS = frozenset(
    {
        "elderly",
        "living_alone",
        "elderly_only_household",
        "disabled",
        "deaf_mute",
        "pregnant",
        "infant",
        "newborn",
        "dialysis",
        "chronic_medication",
        "bedridden",
        "tenant",
    }
)

HEADER_ALIASES = {
    "小区": "compound",
    "小区编号": "compound",
    "楼栋": "building",
    "楼号": "building",
    "单元": "unit",
    "门洞": "unit",
    "房号": "room",
    "室": "room",
    "户号": "household",
    "姓名": "name",
    "证件类型": "document_type",
    "证件号码": "document_number",
    "身份证号": "document_number",
    "身份证号码": "document_number",
    "手机号": "phone",
    "手机号码": "phone",
    "联系电话": "phone",
    "电话": "phone",
    "出生日期": "birth_date",
    "性别": "sex",
    "标签": "tags",
    "人员标签": "tags",
    "备注": "care_notes",
    "照护备注": "care_notes",
} | {field: field for field in FIELDS}
DOCUMENT_TYPES = {
    "身份证": DocumentType.ID_CARD,
    "居民身份证": DocumentType.ID_CARD,
    "护照": DocumentType.PASSPORT,
    "其他": DocumentType.OTHER,
    "": DocumentType.ID_CARD,
} | {kind.value: kind for kind in DocumentType}
SEXES = {
    "m": Sex.MALE,
    "male": Sex.MALE,
    "男": Sex.MALE,
    "f": Sex.FEMALE,
    "female": Sex.FEMALE,
    "女": Sex.FEMALE,
}
TAG_ALIASES = {
    "独居": "living_alone",
    "残疾": "disabled",
    "孕妇": "pregnant",
    "透析": "dialysis",
    "卧床": "bedridden",
    "租户": "tenant",
    "婴儿": "infant",
    "新生儿": "newborn",
    "聋哑": "deaf_mute",
    "慢病用药": "chronic_medication",
    "老人": "elderly",
    "老年": "elderly",
    "纯老户": "elderly_only_household",
} | {tag: tag for tag in TAGS}
# Enum attribute access costs a lookup through the metaclass on every row.
_ID_CARD = DocumentType.ID_CARD
_TAG_SEPARATORS = re.compile(r"[;,|、，；\s]+")
_DATE = re.compile(
    r"(\d{4})(?:[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]00:00(?::00)?)?|(\d{2})(\d{2}))", re.ASCII
)
PLACE_MAX = 40
NAME_MAX = 60
NOTES_MAX = 500
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
_SNIFF_CHUNK = 64 * 1024
# Bounds the tag cache: valid combinations are few, but spellings of them are not.
_TAG_CACHE_MAX = 4096


def iter_ledger(
    file: BinaryIO, *, filename: str, max_errors: int = 1000
) -> Iterator[LedgerRow | RowError]:
    """Read a ledger and yield, in file order, a LedgerRow per valid row or its RowErrors.

    The header is read before this returns, so a file that is not a ledger raises
    LedgerFormatError at once. `file` must be seekable and stays open. Blank rows are
    skipped. A row with problems yields one RowError per bad field and no LedgerRow. Once
    `max_errors` errors have been yielded, the next one is replaced by a final
    RowError(row=<row reached>, column=None, message="too many errors; stopped after N")
    and reading stops. A file whose encoding breaks after the sniffed start raises
    LedgerFormatError while iterating.
    """
    if max_errors < 1:
        raise ValueError("max_errors must be at least 1")
    records = _open_records(file, filename=filename)
    try:
        columns = _read_header(records)
    except BaseException:
        if isinstance(records, Generator):
            records.close()
        raise
    parser = _RowParser(columns, today=date.today())
    return _parse(records, parser=parser, max_errors=max_errors)


def _parse(
    records: Iterator[tuple[int, list[str]]], *, parser: _RowParser, max_errors: int
) -> Iterator[LedgerRow | RowError]:
    errors = 0
    number = 0
    parse = parser.parse
    try:
        for number, cells in records:
            result = parse(number, cells)
            if result is None:
                continue
            if isinstance(result, LedgerRow):
                yield result
                continue
            for error in result:
                if errors == max_errors:
                    yield RowError(number, None, f"too many errors; stopped after {max_errors}")
                    return
                errors += 1
                yield error
    except UnicodeDecodeError:
        raise LedgerFormatError(
            f"unreadable text after row {number}: the file mixes encodings; "
            "save it again as CSV UTF-8"
        ) from None
    except csv.Error as exc:
        raise LedgerFormatError(f"the CSV file is malformed after row {number}: {exc}") from None


def _open_records(file: BinaryIO, *, filename: str) -> Iterator[tuple[int, list[str]]]:
    start = file.tell()
    magic = file.read(4)
    file.seek(start)
    if magic == _ZIP_MAGIC:
        return _xlsx_records(file)
    if magic == _OLE_MAGIC or filename.lower().endswith(".xls"):
        raise LedgerFormatError("old .xls files are not supported; save the sheet as .xlsx")
    if filename.lower().endswith(".xlsx"):
        raise LedgerFormatError("the file is named .xlsx but is not an Excel workbook")
    return _csv_records(file)


def _csv_records(file: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    text = io.TextIOWrapper(_Borrowed(file), encoding=_sniff_encoding(file), newline="")
    for number, cells in enumerate(csv.reader(text), start=1):
        # Our exports neutralise cells a spreadsheet would run as formulas; undo that.
        if any(cell[:1] == NEUTRALISER for cell in cells):
            cells = [csv_value(cell) for cell in cells]
        yield number, cells


def _sniff_encoding(file: BinaryIO) -> str:
    """UTF-8 (with or without BOM) if the first non-ASCII bytes decode as such, else GB18030.

    Chinese Excel saves "CSV" in GBK, which GB18030 extends.
    """
    start = file.tell()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    seen_non_ascii = False
    try:
        first = file.read(2)
        if first in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            raise LedgerFormatError(
                "UTF-16 text files are not supported; save the sheet as CSV UTF-8 or .xlsx"
            )
        chunk = first + file.read(_SNIFF_CHUNK)
        while chunk:
            seen_non_ascii = seen_non_ascii or not chunk.isascii()
            decoder.decode(chunk)
            # Stop at the first non-ASCII text that decoded without a cut character.
            if seen_non_ascii and not decoder.getstate()[0]:
                return "utf-8-sig"
            chunk = file.read(_SNIFF_CHUNK)
        decoder.decode(b"", final=True)
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "gb18030"
    finally:
        file.seek(start)


class _Borrowed(io.BufferedIOBase):
    """Lends the caller's file to TextIOWrapper without letting it close the file."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    @property
    def name(self) -> str:
        return str(getattr(self._file, "name", "ledger"))

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        return self._file.read(-1 if size is None else size)

    def read1(self, size: int = -1, /) -> bytes:
        return self._file.read(size)


def _xlsx_records(file: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    try:
        workbook = openpyxl.load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken workbook
        raise LedgerFormatError(f"the Excel workbook cannot be read: {exc}") from None
    if not workbook.worksheets:
        raise LedgerFormatError("the Excel workbook has no sheet")
    return _xlsx_rows(workbook)


def _xlsx_rows(workbook: openpyxl.Workbook) -> Iterator[tuple[int, list[str]]]:
    try:
        sheet = workbook.worksheets[0]
        # Some exporters write a wrong sheet size, which would silently cut rows off.
        sheet.reset_dimensions()
        # Read-only sheets fill in missing rows, so enumerate gives the sheet's row numbers.
        rows = sheet.iter_rows(values_only=True)
        for number, values in enumerate(rows, start=1):
            yield number, [_cell_text(value) for value in values]
    finally:
        workbook.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _read_header(records: Iterator[tuple[int, list[str]]]) -> dict[str, int]:
    try:
        for _, cells in records:
            if any(cell.strip() for cell in cells):
                return _map_header(cells)
    except UnicodeDecodeError:
        message = "the header is unreadable text; save the file as CSV UTF-8"
        raise LedgerFormatError(message) from None
    except csv.Error as exc:
        raise LedgerFormatError(f"the CSV file is malformed: {exc}") from None
    raise LedgerFormatError(NO_RESIDENTS)


def _map_header(cells: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(cells):
        field = HEADER_ALIASES.get(_header_key(cell))
        if field is None:
            continue
        if field in columns:
            raise LedgerFormatError(
                f"columns {cells[columns[field]].strip()!r} and {cell.strip()!r} "
                f"both give the {field}; keep one"
            )
        columns[field] = index
    missing = [field for field in REQUIRED if field not in columns]
    if missing:
        raise LedgerFormatError(f"missing required columns: {', '.join(missing)}")
    return columns


def _header_key(cell: str) -> str:
    # Templates often star required columns ("姓名*") and people write "Document number".
    return cell.strip().strip("*").strip().lower().replace(" ", "_").replace("-", "_")


class _FirstRows:
    """The row where each mainland ID number first appeared, in 12 bytes a number.

    IDs are keyed by the int of their 17 digits (the check character follows from them).
    A dict of a million such ints and their rows takes 160 MB in objects; this table keeps
    them in two flat arrays, by open addressing, at most half full.
    """

    __slots__ = ("_count", "_keys", "_mask", "_rows")
    _MIX = 0x9E3779B97F4A7C15

    def __init__(self) -> None:
        self._count = 0
        self._mask, self._keys, self._rows = self._tables(1 << 12)

    @staticmethod
    def _tables(size: int) -> tuple[int, array[int], array[int]]:
        # Keys are stored plus one, so that 0 marks a free slot.
        return size - 1, array("q", bytes(8 * size)), array("i", bytes(4 * size))

    def setdefault(self, key: int, row: int) -> int:
        """The row ``key`` first appeared at; ``row`` (remembered) when it is new."""
        key += 1
        keys, mask = self._keys, self._mask
        slot = (key * self._MIX >> 32) & mask
        while found := keys[slot]:
            if found == key:
                return self._rows[slot]
            slot = (slot + 1) & mask
        keys[slot] = key
        self._rows[slot] = row
        self._count += 1
        if self._count << 1 > mask:
            self._grow()
        return row

    def _grow(self) -> None:
        old_keys, old_rows = self._keys, self._rows
        mask, keys, rows = self._tables(len(old_keys) << 1)
        for key, row in zip(old_keys, old_rows, strict=True):
            if key:
                slot = (key * self._MIX >> 32) & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                rows[slot] = row
        self._mask, self._keys, self._rows = mask, keys, rows


class _RowParser:
    """Validates rows against one header; remembers document numbers to catch duplicates."""

    def __init__(self, columns: dict[str, int], *, today: date) -> None:
        self._width = max(columns.values()) + 1
        # Absent optional columns read index -1: the blank cell appended to every row.
        self._fields = itemgetter(*(columns.get(field, -1) for field in FIELDS))
        self._pad = len(columns) < len(FIELDS)
        self._today = today
        self._first_ids = _FirstRows()
        self._first_others: dict[tuple[DocumentType, str], int] = {}
        self._tags: dict[str, tuple[str, ...]] = {"": ()}

    def parse(self, row: int, cells: list[str]) -> LedgerRow | list[RowError] | None:
        """The row, its errors, or None for a blank row.

        Checks are written out inline because they run a million times per ledger.
        """
        if len(cells) < self._width:
            cells.extend([""] * (self._width - len(cells)))
        if self._pad:
            cells.append("")
        (
            compound,
            building,
            unit,
            room,
            household,
            name,
            kind,
            number,
            phone,
            birth,
            sex,
            tags,
            notes,
        ) = self._fields(cells)
        compound = compound.strip()
        building = building.strip()
        household = household.strip()
        name = name.strip()
        errors: list[RowError] = []
        if not (
            0 < len(compound) <= PLACE_MAX
            and 0 < len(building) <= PLACE_MAX
            and 0 < len(household) <= PLACE_MAX
            and 0 < len(name) <= NAME_MAX
        ):
            if not any(cell.strip() for cell in cells):
                return None
            _check_required(row, compound, building, household, name, errors=errors)
        unit = unit.strip() or None
        room = room.strip() or None
        if (unit and len(unit) > PLACE_MAX) or (room and len(room) > PLACE_MAX):
            _check_optional(row, unit=unit, room=room, errors=errors)
        document_type = DOCUMENT_TYPES.get(kind) or _document_type(kind, row=row, errors=errors)
        if document_type is _ID_CARD and not birth and not sex:
            document_number, birth_date, sex_value = self._id_card(row, number, errors)
        else:
            document_number, birth_date, sex_value = self._person(
                row, document_type=document_type, number=number, birth=birth, sex=sex,
                errors=errors,
            )  # fmt: skip
        phone = phone.strip()
        phone_value = None
        if phone:
            try:
                phone_value = normalize_phone(phone)
            except InvalidPhone as exc:
                errors.append(RowError(row, "phone", str(exc)))
        tag_values = self._tags.get(tags)
        if tag_values is None:
            tag_values = self._parse_tags(tags, row=row, errors=errors)
        notes = notes.strip()
        if len(notes) > NOTES_MAX:
            message = f"care notes must have at most {NOTES_MAX} characters"
            errors.append(RowError(row, "care_notes", message))
        if errors:
            return errors
        built = _RowBuilder(
            row,
            compound,
            building,
            unit,
            room,
            household,
            name,
            document_type or DocumentType.ID_CARD,
            document_number,
            phone_value,
            birth_date,
            sex_value,
            tag_values,
            notes or None,
        )
        built.__class__ = LedgerRow  # type: ignore[assignment]
        return cast(LedgerRow, built)

    def _id_card(
        self, row: int, number: str, errors: list[RowError]
    ) -> tuple[str, date | None, Sex | None]:
        try:
            card = parse_id_card(number, today=self._today)
        except InvalidDocument as exc:
            errors.append(RowError(row, "document_number", _id_error(exc, number)))
            return number, None, None
        first = self._first_ids.setdefault(int(card[0][:17]), row)
        if first != row:
            errors.append(_duplicate(row, first))
        return card

    def _person(
        self,
        row: int,
        *,
        document_type: DocumentType | None,
        number: str,
        birth: str,
        sex: str,
        errors: list[RowError],
    ) -> tuple[str, date | None, Sex | None]:
        """Document, birth date and sex when birth date or sex are given or it is no ID card."""
        birth_date = _birth_date(birth, row=row, today=self._today, errors=errors)
        sex_value = _sex(sex, row=row, errors=errors)
        if document_type is None:
            return number, birth_date, sex_value
        if document_type is not DocumentType.ID_CARD:
            number = self._other_document(document_type, number, row=row, errors=errors)
            return number, birth_date, sex_value
        number, card_birth, card_sex = self._id_card(row, number, errors)
        if card_birth is None:
            return number, birth_date, sex_value
        if birth_date is not None and birth_date != card_birth:
            message = f"birth date {birth_date} does not match the ID number ({card_birth})"
            errors.append(RowError(row, "birth_date", message))
        if sex_value is not None and sex_value is not card_sex:
            message = f"sex {sex_value} does not match the ID number ({card_sex})"
            errors.append(RowError(row, "sex", message))
        return number, card_birth, card_sex

    def _other_document(
        self, document_type: DocumentType, number: str, *, row: int, errors: list[RowError]
    ) -> str:
        try:
            number = validate_document(document_type=document_type, number=number)
        except InvalidDocument as exc:
            errors.append(RowError(row, "document_number", str(exc)))
            return number
        first = self._first_others.setdefault((document_type, number), row)
        if first != row:
            errors.append(_duplicate(row, first))
        return number

    def _parse_tags(self, text: str, *, row: int, errors: list[RowError]) -> tuple[str, ...]:
        tags: set[str] = set()
        unknown: list[str] = []
        for word in _TAG_SEPARATORS.split(text.strip()):
            tag = TAG_ALIASES.get(word.lower())
            if tag is not None:
                tags.add(tag)
            elif word:
                unknown.append(word)
        if unknown:
            names = ", ".join(repr(word) for word in unknown)
            message = f"unknown tag {names}" if len(unknown) == 1 else f"unknown tags {names}"
            errors.append(RowError(row, "tags", message))
            return ()
        result = tuple(sorted(tags))
        if len(self._tags) < _TAG_CACHE_MAX:
            self._tags[text] = result
        return result


def _check_required(
    row: int, compound: str, building: str, household: str, name: str, *, errors: list[RowError]
) -> None:
    for column, value, limit in (
        ("compound", compound, PLACE_MAX),
        ("building", building, PLACE_MAX),
        ("household", household, PLACE_MAX),
        ("name", name, NAME_MAX),
    ):
        if not value:
            errors.append(RowError(row, column, f"{column} is required"))
        elif len(value) > limit:
            message = f"{column} must have at most {limit} characters"
            errors.append(RowError(row, column, message))


def _check_optional(
    row: int, *, unit: str | None, room: str | None, errors: list[RowError]
) -> None:
    for column, value in (("unit", unit), ("room", room)):
        if value and len(value) > PLACE_MAX:
            message = f"{column} must have at most {PLACE_MAX} characters"
            errors.append(RowError(row, column, message))


def _duplicate(row: int, first: int) -> RowError:
    message = f"duplicate document number in this file (first at row {first})"
    return RowError(row, "document_number", message)


def _document_type(text: str, *, row: int, errors: list[RowError]) -> DocumentType | None:
    """The document type; ID card when blank, None (with an error) when unknown."""
    text = text.strip()
    kind = DOCUMENT_TYPES.get(text.lower())
    if kind is None:
        message = f"unknown document type {text!r} (use id_card, passport or other)"
        errors.append(RowError(row, "document_type", message))
    return kind


def _id_error(exc: InvalidDocument, number: str) -> str:
    # Excel shows long numbers as 1.10105E+17 and drops their last digits on save.
    if "E+" in number.upper():
        return "ID number was saved as an Excel number and lost digits; format the column as text"
    return str(exc)


def _birth_date(text: str, *, row: int, today: date, errors: list[RowError]) -> date | None:
    text = text.strip()
    if not text:
        return None
    match = _DATE.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        year, month, day, month8, day8 = match.groups()
        value = date(int(year), int(month or month8), int(day or day8))
    except ValueError:
        message = f"birth date {text!r} is not a date (use YYYY-MM-DD)"
        errors.append(RowError(row, "birth_date", message))
        return None
    if value.year < 1900 or value > today:
        errors.append(RowError(row, "birth_date", f"birth date {value} is not plausible"))
        return None
    return value


def _sex(text: str, *, row: int, errors: list[RowError]) -> Sex | None:
    text = text.strip()
    if not text:
        return None
    value = SEXES.get(text.lower())
    if value is None:
        errors.append(RowError(row, "sex", f"sex {text!r} is not one of M, F, 男, 女"))
    return value
