"""Streaming reader of lab results files (CSV or JSON), without a database.

One result per tube: its code, negative/positive/invalid, the lab and when the lab resulted
it. Files reach a few hundred thousand rows, so CSV rows are read, checked and handed on
one at a time. A row with a problem comes back as :class:`RowError` (one per bad field) and
the rest go on; a file that cannot be read as results at all raises
:class:`ResultsFormatError` naming the row (and column) where reading stopped.
"""

import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from services.testing.tubes.schemas import TUBE_CODE_LENGTH, normal_tube_code

FIELDS = ("tube_code", "result", "lab", "resulted_at")
RESULTS = {
    "negative": "negative",
    "neg": "negative",
    "阴性": "negative",
    "positive": "positive",
    "pos": "positive",
    "阳性": "positive",
    "invalid": "invalid",
    "无效": "invalid",
}
_HEADER_ALIASES = {
    "管码": "tube_code",
    "试管编码": "tube_code",
    "code": "tube_code",
    "检测结果": "result",
    "结果": "result",
    "检测机构": "lab",
    "报告时间": "resulted_at",
} | {field: field for field in FIELDS}
# A lab's day is about 100,000 tubes; a town-wide round a few times that.
MAX_ROWS = 250_000
_CODE = re.compile(f"[A-Za-z0-9-]{{{TUBE_CODE_LENGTH[0]},{TUBE_CODE_LENGTH[1]}}}")
_LAB_MAX = 120
# Timestamps repeat a lot within a lab's file; parsing each once keeps the reader fast.
_TIME_CACHE_MAX = 50_000


class ResultsFormatError(ValueError):
    """The file as a whole cannot be read as results; nothing of it is applied."""

    def __init__(
        self, message: str, *, row: int | None, column: str | None = None, too_large: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.row = row
        self.column = column
        self.too_large = too_large


@dataclass(slots=True, frozen=True)
class ResultRow:
    """``row``: the CSV line (the header is row 1) or the JSON index in results (from 0)."""

    row: int
    tube_code: str
    result: str
    lab: str
    resulted_at: datetime


@dataclass(slots=True, frozen=True)
class RowError:
    row: int
    column: str | None
    message: str
    tube_code: str | None = None


class _Checker:
    """Checks one row's values; remembers tube codes to catch a tube listed twice."""

    def __init__(self, *, latest: datetime) -> None:
        self._first_rows: dict[str, int] = {}
        self._times: dict[str, datetime] = {}
        self._latest = latest

    def check(self, row: int, values: Sequence[Any]) -> ResultRow | list[RowError]:
        code, result, lab, resulted_at = (_text(v) for v in values)
        errors: list[RowError] = []
        for column, value in zip(FIELDS, (code, result, lab, resulted_at), strict=True):
            if value is None:
                errors.append(RowError(row, column, f"{column} must be text", _code(code)))
            elif not value:
                errors.append(RowError(row, column, f"{column} is required", _code(code)))
        if errors:
            return errors
        assert code and result and lab and resulted_at
        if not _CODE.fullmatch(code):
            message = "tube_code must be 4 to 40 letters, digits or dashes"
            errors.append(RowError(row, "tube_code", message, code[:40]))
        else:
            # As every tube code enters: one tube whatever the case of its label.
            code = normal_tube_code(code)
            first = self._first_rows.setdefault(code, row)
            if first != row:
                message = f"tube {code} is listed twice in this file (first at row {first})"
                errors.append(RowError(row, "tube_code", message, code))
        outcome = RESULTS.get(result.lower())
        if outcome is None:
            message = f"result {result!r} is not one of negative, positive, invalid"
            errors.append(RowError(row, "result", message, code[:40]))
        if len(lab) > _LAB_MAX:
            message = f"lab must have at most {_LAB_MAX} characters"
            errors.append(RowError(row, "lab", message, code[:40]))
        at = self._time(row, resulted_at, code, errors)
        if errors:
            return errors
        assert outcome is not None and at is not None
        return ResultRow(row, code, outcome, lab, at)

    def _time(self, row: int, text: str, code: str, errors: list[RowError]) -> datetime | None:
        at = self._times.get(text)
        if at is not None:
            return at
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            message = f"resulted_at {text!r} is not a time (use 2022-04-02T09:30:00+08:00)"
            errors.append(RowError(row, "resulted_at", message, code[:40]))
            return None
        if at.tzinfo is None:
            message = f"resulted_at {text!r} needs its UTC offset, e.g. +08:00"
            errors.append(RowError(row, "resulted_at", message, code[:40]))
            return None
        if at > self._latest:
            message = f"resulted_at {text} is in the future"
            errors.append(RowError(row, "resulted_at", message, code[:40]))
            return None
        if len(self._times) < _TIME_CACHE_MAX:
            self._times[text] = at
        return at


def _text(value: Any) -> str | None:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else None


def _code(code: str | None) -> str | None:
    return code[:40] if code else None


def read_csv(file: BinaryIO, *, latest: datetime) -> Iterator[ResultRow | RowError]:
    """The rows of a CSV file in UTF-8 (a BOM is fine), none resulted after ``latest`` (now
    and the clocks' tolerance). The header is read before this returns, so a file without
    the four columns raises at once; an unreadable line raises :class:`ResultsFormatError`
    while iterating."""
    reader = csv.reader(_utf8_lines(file))
    columns = _read_header(reader)
    return _csv_rows(reader, columns, _Checker(latest=latest))


def _utf8_lines(file: BinaryIO) -> Iterator[str]:
    for number, line in enumerate(file, start=1):
        if number == 1:
            if line.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise ResultsFormatError(
                    "UTF-16 text is not supported; save the file as CSV UTF-8", row=1
                )
            line = line.removeprefix(b"\xef\xbb\xbf")
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            raise ResultsFormatError(
                f"row {number} is not UTF-8 text; save the file as CSV UTF-8", row=number
            ) from None


def _read_header(reader: Any) -> dict[str, int]:
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                return _map_header(cells)
    except csv.Error as exc:
        raise ResultsFormatError(f"the CSV header is malformed: {exc}", row=1) from None
    raise ResultsFormatError("the file has no header row", row=1)


def _map_header(cells: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(cells):
        field = _HEADER_ALIASES.get(cell.strip().lower().replace(" ", "_"))
        if field is None:
            continue
        if field in columns:
            raise ResultsFormatError(
                f"two columns give the {field}; keep one", row=1, column=cell.strip()
            )
        columns[field] = index
    missing = [field for field in FIELDS if field not in columns]
    if missing:
        raise ResultsFormatError(
            f"the header lacks the column(s) {', '.join(missing)}; expected {','.join(FIELDS)}",
            row=1,
            column=missing[0],
        )
    return columns


def _csv_rows(
    reader: Any, columns: dict[str, int], checker: _Checker
) -> Iterator[ResultRow | RowError]:
    indexes = [columns[field] for field in FIELDS]
    width = max(indexes) + 1
    count = 0
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            count += 1
            if count > MAX_ROWS:
                raise _too_many(reader.line_num)
            if len(cells) < width:
                cells += [""] * (width - len(cells))
            values = (cells[indexes[0]], cells[indexes[1]], cells[indexes[2]], cells[indexes[3]])
            yield from _as_items(checker.check(reader.line_num, values))
    except csv.Error as exc:
        raise ResultsFormatError(
            f"the CSV file is malformed at row {reader.line_num}: {exc}", row=reader.line_num
        ) from None


def read_json(data: bytes, *, latest: datetime) -> Iterator[ResultRow | RowError]:
    """The rows of ``{"results": [...]}`` (or a bare list) of objects with the four fields,
    none resulted after ``latest``. The document is parsed before this returns, so garbage
    raises at once."""
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ResultsFormatError(
            f"the body is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            row=exc.lineno,
        ) from None
    except UnicodeDecodeError:
        raise ResultsFormatError("the body is not UTF-8 text", row=None) from None
    items = document.get("results") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ResultsFormatError(
            'expected {"results": [...]} or a list of results', row=None, column="results"
        )
    if len(items) > MAX_ROWS:
        raise _too_many(MAX_ROWS)
    return _json_rows(items, _Checker(latest=latest))


def _json_rows(items: list[Any], checker: _Checker) -> Iterator[ResultRow | RowError]:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            yield RowError(index, None, "each result must be an object with " + ", ".join(FIELDS))
            continue
        values = tuple(item.get(f) for f in FIELDS)
        yield from _as_items(checker.check(index, values))


def _as_items(checked: ResultRow | list[RowError]) -> Iterable[ResultRow | RowError]:
    return checked if isinstance(checked, list) else (checked,)


def _too_many(row: int) -> ResultsFormatError:
    return ResultsFormatError(
        f"a results file holds at most {MAX_ROWS} rows; split it", row=row, too_large=True
    )
