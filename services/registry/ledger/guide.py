"""The ledger import explained to a committee, generated from the parser's own tables so it
cannot drift from what the parser accepts: the page docs/ledger.md (`cordon ledger-doc`),
the upload's OpenAPI description, and the templates (CSV and .xlsx) the API serves."""

import csv
import io
from collections import defaultdict
from datetime import date

import openpyxl
from openpyxl.styles import Font

from services.registry.documents import Sex, make_id_card
from services.registry.ledger.parse import (
    DOCUMENT_TYPES,
    FIELDS,
    HEADER_ALIASES,
    NAME_MAX,
    NOTES_MAX,
    PLACE_MAX,
    REQUIRED,
    SEXES,
    TAG_ALIASES,
)

# What each column holds, in the committee's terms.
MEANINGS = {
    "compound": "the compound's code, as registered (`POST /v1/compounds`)",
    "building": "the building's code in that compound",
    "unit": "the unit (stairwell, 门洞) code in that building; required when the building "
    "has units, empty for a building without units (a self-built house)",
    "room": "the room or door number",
    "household": "the household's code: **this column makes the household**. Rows with the "
    "same compound, building, unit and household code are one family; each unit numbers "
    "its own households (room 101 of unit 1 and of unit 2 are two households)",
    "name": "the resident's name",
    "document_type": "the kind of document; empty means a mainland ID card",
    "document_number": "the document's number; a mainland ID number is checked (check "
    "character) and gives the birth date and sex; unique in the town",
    "phone": "a mobile or landline: digits, spaces and + - ( ) . / only; read as a "
    "mainland number unless it starts with +",
    "birth_date": "YYYY-MM-DD (also YYYY/MM/DD or YYYYMMDD); must agree with the ID number",
    "sex": "must agree with the ID number",
    "tags": "care tags, separated by 、 , ; or spaces (see the list below)",
    "care_notes": f"free text for the people who visit (at most {NOTES_MAX} characters)",
}
# The header of the templates: one accepted spelling per column, checked against the parser.
TEMPLATE_HEADERS = {
    "compound": "小区编号",
    "building": "楼栋",
    "unit": "单元",
    "room": "房号",
    "household": "户号",
    "name": "姓名",
    "document_type": "证件类型",
    "document_number": "证件号码",
    "phone": "手机号",
    "birth_date": "出生日期",
    "sex": "性别",
    "tags": "标签",
    "care_notes": "备注",
}
assert all(HEADER_ALIASES[h] == f for f, h in TEMPLATE_HEADERS.items()), "template header drift"
EXAMPLE_ROWS = [
    ("P1", "1", "1", "101", "101", "王秀英", "", "ID1", "13812345678", "", "", "老人、独居", ""),
    ("P1", "1", "2", "101", "101", "李明", "", "ID2", "021-6321 5678", "", "", "", ""),
    ("P1", "1", "2", "101", "101", "李小宝", "", "ID3", "", "", "", "婴儿", "配方奶 每天"),
    ("P1", "H7", "", "", "A", "张伟", "护照", "E12345678", "", "1975-03-02", "男", "租户", ""),
]
MAX_UPLOAD = "200 MB (the setting `CORDON_MAX_UPLOAD_MB`)"


def _example_ids() -> dict[str, str]:
    return {
        "ID1": make_id_card(region="310101", birth=date(1941, 2, 3), sequence=1, sex=Sex.FEMALE),
        "ID2": make_id_card(region="310101", birth=date(1983, 7, 9), sequence=2, sex=Sex.MALE),
        "ID3": make_id_card(region="310101", birth=date(2021, 12, 1), sequence=3, sex=Sex.MALE),
    }


def examples() -> list[list[str]]:
    ids = _example_ids()
    return [[ids.get(cell, cell) for cell in row] for row in EXAMPLE_ROWS]


def _grouped(table: dict[str, object]) -> dict[str, list[str]]:
    """Spellings by what they mean, the canonical one first."""
    spellings: dict[str, list[str]] = defaultdict(list)
    for spelling, meaning in table.items():
        key = str(getattr(meaning, "value", meaning))
        if spelling and spelling != key:
            spellings[key].append(spelling)
    return {key: [key, *spellings[key]] for key in sorted(spellings, key=str)}


def _quoted(words: list[str]) -> str:
    return ", ".join(f"`{w}`" for w in words)


def columns_table() -> str:
    headers = _grouped(dict(HEADER_ALIASES))
    lines = ["| column | required | headers accepted | what it holds |", "|---|---|---|---|"]
    for field in FIELDS:
        required = "yes" if field in REQUIRED else ""
        lines.append(f"| `{field}` | {required} | {_quoted(headers[field])} | {MEANINGS[field]} |")
    return "\n".join(lines)


def values_lists() -> str:
    document_types = _grouped({k: v for k, v in DOCUMENT_TYPES.items() if k})
    sexes = _grouped(dict(SEXES))
    tags = _grouped(dict(TAG_ALIASES))
    lines = ["Document types (empty: `id_card`):", ""]
    lines += [f"- `{kind}`: {_quoted(words[1:])}" for kind, words in document_types.items()]
    lines += ["", "Sex (upper or lower case):", ""]
    lines += [f"- `{sex}`: {_quoted(words[1:])}" for sex, words in sexes.items()]
    lines += ["", "Tags (upper or lower case):", ""]
    lines += [
        f"- `{tag}`" + (f": {_quoted(words[1:])}" if words[1:] else "")
        for tag, words in tags.items()
    ]
    return "\n".join(lines)


def rules() -> str:
    return f"""- **Prepare the places first.** Compounds, their buildings and units must exist
  (`POST /v1/compounds`, `POST /v1/buildings` with its units); the ledger names them by code
  and a row naming an unknown one is an error. Grids and people come later and separately.
- **One row per resident.** The household column makes the household (see the table);
  a resident's unit is always their household's.
- **Whole file or nothing.** Any bad row rejects the file (422) with every error by row
  (the header is row 1) and column; nothing is written. A file of only a header is refused:
  the file has no residents. The same file again changes nothing (200 `duplicate`); a
  changed file updates residents by document number and records moves between households.
- **Formats.** CSV in UTF-8 (with or without BOM) or GBK/GB18030, as Chinese Excel saves
  it, or .xlsx (the first sheet); not the old .xls. Format the ID and phone columns as
  text in Excel, or it drops the last digits of long numbers.
- **Size.** Up to {MAX_UPLOAD}.
- Codes and names: places at most {PLACE_MAX} characters, names {NAME_MAX}, care notes
  {NOTES_MAX}. Headers are matched loosely: case, spaces and a trailing `*` do not matter,
  unknown columns are ignored."""


def upload_description() -> str:
    """The OpenAPI description of `POST /v1/imports/residents`."""
    return (
        "A committee's base ledger (台账), one row per resident. Templates to fill in: "
        "`GET /v1/imports/template.csv` and `GET /v1/imports/template.xlsx`; the guide is "
        "docs/ledger.md.\n\n" + rules() + "\n\n" + columns_table() + "\n\n" + values_lists()
    )


def render() -> str:
    """docs/ledger.md."""
    header = " | ".join(TEMPLATE_HEADERS[f] for f in FIELDS)
    example = "\n".join(" | ".join(row).rstrip() for row in examples())
    return f"""# Importing the base ledger (台账)

<!-- Generated by `cordon ledger-doc` from services/registry/ledger (the parser's own
tables); edit those, not this file. -->

A committee keeps its residents in a spreadsheet: one row per person, with the compound,
building, unit, room and household they live in. `POST /v1/imports/residents` takes that
file as it is (multipart field `file`).

Templates to fill in, served by the API (no sign-in needed):
[`GET /v1/imports/template.csv`](/v1/imports/template.csv) (UTF-8 with BOM, opens in Excel)
and [`GET /v1/imports/template.xlsx`](/v1/imports/template.xlsx) (ID and phone columns
already text; a second sheet 说明 lists the accepted values).

## Rules

{rules()}

## Columns

{columns_table()}

## Values

{values_lists()}

## Example

{header}
{"|".join(["---"] * len(FIELDS))}
{example}

The last example is a self-built house `H7` without units: its households are identified
in the building.
"""


def template_csv() -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([TEMPLATE_HEADERS[f] for f in FIELDS])
    # The BOM makes Excel read the Chinese headers as UTF-8.
    return out.getvalue().encode("utf-8-sig")


def template_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "台账"
    sheet.append([TEMPLATE_HEADERS[f] for f in FIELDS])
    for index, field in enumerate(FIELDS, start=1):
        letter = openpyxl.utils.get_column_letter(index)
        sheet.column_dimensions[letter].width = 18
        sheet.cell(row=1, column=index).font = Font(bold=field in REQUIRED)
        if field in ("document_number", "phone", "compound", "building", "unit", "household"):
            # Text, so Excel keeps every digit of an ID number and leading zeros of codes.
            for number in range(2, 5002):
                sheet.cell(row=number, column=index).number_format = "@"
    notes = workbook.create_sheet("说明")
    notes.append(["Only the first sheet is imported. Bold columns are required."])
    notes.append([])
    for line in (rules() + "\n\n" + values_lists()).splitlines():
        notes.append([line])
    notes.append([])
    notes.append(["Example rows:"])
    notes.append([TEMPLATE_HEADERS[f] for f in FIELDS])
    for row in examples():
        notes.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
