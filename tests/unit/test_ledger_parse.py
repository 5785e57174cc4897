import dataclasses
import io
import tempfile
import zipfile
from datetime import date, datetime

import openpyxl
import pytest

from services.registry.documents import DocumentType, Sex, make_id_card
from services.registry.ledger.parse import (
    LedgerFormatError,
    LedgerRow,
    RowError,
    iter_ledger,
)

HEADER = ",".join(
    [
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
    ]
)
ZHANG = make_id_card(region="330782", birth=date(1950, 3, 7), sequence=12, sex=Sex.MALE)
LI = make_id_card(region="330782", birth=date(1988, 11, 30), sequence=40, sex=Sex.FEMALE)
WANG = make_id_card(region="330782", birth=date(2021, 6, 1), sequence=7, sex=Sex.MALE)
ZHAO = next(
    number
    for sequence in range(500)
    if (
        number := make_id_card(
            region="110105", birth=date(1949, 12, 31), sequence=sequence, sex=Sex.FEMALE
        )
    ).endswith("X")
)


def read(
    data: bytes, filename: str = "ledger.csv", max_errors: int = 1000
) -> list[LedgerRow | RowError]:
    return list(iter_ledger(io.BytesIO(data), filename=filename, max_errors=max_errors))


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return "\r\n".join(lines).encode(encoding) + b"\r\n"


def rows_of(results: list[LedgerRow | RowError]) -> list[LedgerRow]:
    return [result for result in results if isinstance(result, LedgerRow)]


def errors_of(results: list[LedgerRow | RowError]) -> list[RowError]:
    return [result for result in results if isinstance(result, RowError)]


def test_a_utf8_csv_yields_normalised_rows_with_facts_taken_from_the_id() -> None:
    results = read(
        csv_bytes(
            HEADER,
            f" C01 , 3 ,1,402,H-0402,张建国,,{ZHANG},138 1234 5678,,,elderly;living_alone,"
            "insulin daily",
            f"C01,3,,,H-0402,赵兰,id_card,{ZHAO.lower()},,,,,",
        )
    )
    assert results == [
        LedgerRow(
            row=2,
            compound="C01",
            building="3",
            unit="1",
            room="402",
            household="H-0402",
            name="张建国",
            document_type=DocumentType.ID_CARD,
            document_number=ZHANG,
            phone="+8613812345678",
            birth_date=date(1950, 3, 7),
            sex=Sex.MALE,
            tags=("elderly", "living_alone"),
            care_notes="insulin daily",
        ),
        LedgerRow(
            row=3,
            compound="C01",
            building="3",
            unit=None,
            room=None,
            household="H-0402",
            name="赵兰",
            document_type=DocumentType.ID_CARD,
            document_number=ZHAO,
            phone=None,
            birth_date=date(1949, 12, 31),
            sex=Sex.FEMALE,
            tags=(),
            care_notes=None,
        ),
    ]


def test_rows_are_frozen() -> None:
    [row] = read(csv_bytes(HEADER, f"C01,3,1,402,H1,张建国,,{ZHANG},,,,,"))
    assert isinstance(row, LedgerRow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.name = "someone else"  # type: ignore[misc]
    assert dataclasses.replace(row, name="张三").name == "张三"


def test_a_utf8_bom_does_not_hide_the_first_column() -> None:
    data = b"\xef\xbb\xbf" + csv_bytes(HEADER, f"C01,3,1,402,H1,张建国,,{ZHANG},,,,,")
    [row] = read(data)
    assert isinstance(row, LedgerRow)
    assert row.compound == "C01"


def test_a_gbk_file_from_chinese_excel_with_chinese_headers_and_values() -> None:
    data = csv_bytes(
        "小区,楼栋,单元,房号,户号,姓名,证件类型,身份证号,联系电话,出生日期,性别,人员标签,备注",
        f"阳光小区,5号楼,2单元,301,5-2-301,王秀英,身份证,{LI},13900001111,1988/11/30,女,"
        "独居、残疾,需要轮椅",
        "阳光小区,5号楼,2单元,301,5-2-301,John Smith,护照,e1234567,+1 650 253 0000,1979-02-03,"
        "男,租户,",
        encoding="gbk",
    )
    first, second = read(data)
    assert isinstance(first, LedgerRow)
    assert (first.compound, first.building, first.unit, first.name) == (
        "阳光小区",
        "5号楼",
        "2单元",
        "王秀英",
    )
    assert first.sex is Sex.FEMALE
    assert first.tags == ("disabled", "living_alone")
    assert first.care_notes == "需要轮椅"
    assert isinstance(second, LedgerRow)
    assert second.document_type is DocumentType.PASSPORT
    assert second.document_number == "E1234567"
    assert second.birth_date == date(1979, 2, 3)
    assert second.sex is Sex.MALE
    assert second.phone == "+16502530000"
    assert second.tags == ("tenant",)


@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_a_utf8_character_cut_by_the_sniffed_chunk_still_reads_as_utf8(shift: int) -> None:
    header = b"compound,building,household,document_number,padding,name\r\n"
    prefix = header + f"C01,3,H1,{ZHANG},".encode()
    # Put the three bytes of 张 across the end of the first 64 KiB + 2 bytes read.
    padding = b"p" * (64 * 1024 + 2 - len(prefix) - 1 - shift)
    data = prefix + padding + ",张建国\r\n".encode()
    [row] = read(data)
    assert isinstance(row, LedgerRow)
    assert row.name == "张建国"


def test_a_file_that_switches_encoding_after_the_sniffed_start_fails_as_a_whole() -> None:
    utf8_rows = [
        f"C01,3,1,{n},H{n},张建国,,"
        + make_id_card(
            region=str(330782 + n // 500), birth=date(1950, 3, 7), sequence=n % 500, sex=Sex.MALE
        )
        + ",,,,,"
        for n in range(1500)
    ]
    data = csv_bytes(HEADER, *utf8_rows) + f"C01,3,1,402,H1,李梅,,{LI},,,,,\r\n".encode("gbk")
    assert len(data) > 70_000
    with pytest.raises(LedgerFormatError, match="mixes encodings"):
        read(data)


def xlsx_bytes(*rows: list[object]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def rewrite_sheet(data: bytes, old: bytes, new: bytes) -> bytes:
    """The workbook as another tool might have written it."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert old in content
                content = content.replace(old, new)
            target.writestr(item, content)
    return out.getvalue()


def test_an_xlsx_with_numeric_ids_and_date_cells() -> None:
    data = xlsx_bytes(
        ["小区", "楼栋", "户号", "姓名", "身份证号", "出生日期", "手机号", "单元", "房号"],
        ["C01", 3, 402, "张建国", int(ZHANG), datetime(1950, 3, 7), 13812345678, 1, 402.0],
        [],
        ["C01", 3, 403, "李梅", LI, date(1988, 11, 30), None, None, None],
    )
    # openpyxl rounds big integers; other tools write them exactly.
    data = rewrite_sheet(data, repr(float(ZHANG)).encode(), ZHANG.encode())
    first, second = read(data, filename="台账.xlsx")
    assert isinstance(first, LedgerRow)
    assert first.row == 2
    assert (first.building, first.household, first.unit, first.room) == ("3", "402", "1", "402")
    assert first.document_number == ZHANG
    assert first.birth_date == date(1950, 3, 7)
    assert first.phone == "+8613812345678"
    assert isinstance(second, LedgerRow)
    assert second.row == 4
    assert second.birth_date == date(1988, 11, 30)


def test_a_workbook_that_understates_its_size_is_still_read_to_the_end() -> None:
    data = xlsx_bytes(
        ["compound", "building", "household", "name", "document_number"],
        ["C01", "3", "H1", "张建国", ZHANG],
        ["C01", "3", "H2", "李梅", LI],
    )
    data = rewrite_sheet(data, b'<dimension ref="A1:E3" />', b'<dimension ref="A1:E1" />')
    assert [row.name for row in rows_of(read(data, filename="ledger.xlsx"))] == ["张建国", "李梅"]


def test_an_id_that_excel_stored_as_a_float_is_explained() -> None:
    data = xlsx_bytes(
        ["compound", "building", "household", "name", "document_number"],
        ["C01", "3", "H1", "张建国", float(ZHANG)],
    )
    [error] = read(data, filename="ledger.xlsx")
    assert isinstance(error, RowError)
    assert (error.row, error.column) == (2, "document_number")
    assert "Excel number" in error.message


def test_a_workbook_is_recognised_by_its_content_whatever_its_name() -> None:
    data = xlsx_bytes(
        ["compound", "building", "household", "name", "document_number"],
        ["C01", "3", "H1", "张建国", ZHANG],
    )
    [row] = read(data, filename="upload.csv")
    assert isinstance(row, LedgerRow)
    assert row.name == "张建国"


def test_old_xls_files_are_refused_with_advice() -> None:
    with pytest.raises(LedgerFormatError, match=r"\.xls"):
        read(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, filename="ledger.xls")


def test_missing_required_columns_are_named_before_any_row_is_read() -> None:
    data = csv_bytes("小区,楼栋,姓名,电话", "C01,3,张建国,13812345678")
    missing = "missing required columns: household, document_number"
    with pytest.raises(LedgerFormatError, match=missing):
        iter_ledger(io.BytesIO(data), filename="ledger.csv")


def test_two_columns_for_the_same_field_are_refused() -> None:
    data = csv_bytes("小区,楼栋,户号,姓名,身份证号,电话,手机号")
    with pytest.raises(LedgerFormatError, match="'电话' and '手机号'"):
        read(data)


def test_an_empty_file_has_no_residents() -> None:
    with pytest.raises(LedgerFormatError, match="the file has no residents"):
        read(b"\r\n , ,\r\n")


def test_headers_are_matched_loosely_and_unknown_columns_ignored() -> None:
    data = csv_bytes(
        "  Compound ,BUILDING,Household,姓名*,Document Number,Remarks from 2021",
        f"C01,3,H1,张建国,{ZHANG},whatever",
    )
    [row] = read(data)
    assert isinstance(row, LedgerRow)
    assert (row.compound, row.name, row.document_number) == ("C01", "张建国", ZHANG)


def test_each_bad_field_of_a_row_is_reported_and_the_row_is_dropped() -> None:
    bad_check = ZHANG[:17] + ("1" if ZHANG[17] != "1" else "2")
    data = csv_bytes(
        HEADER,
        f"C01,3,1,402,H1,张建国,,{bad_check},12345,,,elderly;vip,",
        f"C01,3,1,402,H1,李梅,,{LI},,,,,",
    )
    results = read(data)
    assert [(e.row, e.column) for e in errors_of(results)] == [
        (2, "document_number"),
        (2, "phone"),
        (2, "tags"),
    ]
    messages = [e.message for e in errors_of(results)]
    assert "check digit is wrong" in messages[0]
    assert "'12345'" in messages[1]
    assert "'vip'" in messages[2]
    assert [row.name for row in rows_of(results)] == ["李梅"]


def test_required_fields_and_limits_are_reported_per_column() -> None:
    data = csv_bytes(HEADER, f",3,1,402,{'H' * 41},,,{ZHANG},,,,,{'n' * 501}")
    errors = errors_of(read(data))
    assert [(e.row, e.column) for e in errors] == [
        (2, "compound"),
        (2, "household"),
        (2, "name"),
        (2, "care_notes"),
    ]
    assert errors[0].message.startswith("compound is required")


def test_birth_date_and_sex_that_contradict_the_id_are_errors() -> None:
    data = csv_bytes(
        HEADER,
        f"C01,3,1,402,H1,张建国,,{ZHANG},,1950-03-08,女,,",
        f"C01,3,1,403,H2,李梅,,{LI},,19881130,F,,",
        f"C01,3,1,404,H3,王小宝,,{WANG},,2021/6/1,m,,",
    )
    results = read(data)
    assert [(e.row, e.column) for e in errors_of(results)] == [(2, "birth_date"), (2, "sex")]
    assert "1950-03-07" in errors_of(results)[0].message
    assert [row.name for row in rows_of(results)] == ["李梅", "王小宝"]


def test_unreadable_values_are_errors() -> None:
    data = csv_bytes(
        HEADER,
        f"C01,3,1,402,H1,张建国,驾照,{ZHANG},,,,,",
        f"C01,3,1,403,H2,李梅,,{LI},,30/11/1988,X,,",
    )
    errors = errors_of(read(data))
    assert [(e.row, e.column) for e in errors] == [
        (2, "document_type"),
        (3, "birth_date"),
        (3, "sex"),
    ]
    assert "'驾照'" in errors[0].message


def test_a_duplicate_id_names_the_row_where_it_first_appeared() -> None:
    data = csv_bytes(
        HEADER,
        f"C01,3,1,402,H1,张建国,,{ZHANG},,,,,",
        f"C01,3,1,403,H2,李梅,,{LI},,,,,",
        f"C02,8,1,101,H9,张建国,,{ZHANG.lower()},,,,,",
        "C02,8,1,101,H9,John Smith,passport,E1234567,,,,,",
        "C02,8,1,102,H10,John Smith,passport,e1234567,,,,,",
    )
    results = read(data)
    assert [(e.row, e.column, e.message) for e in errors_of(results)] == [
        (4, "document_number", "duplicate document number in this file (first at row 2)"),
        (6, "document_number", "duplicate document number in this file (first at row 5)"),
    ]
    assert [row.row for row in rows_of(results)] == [2, 3, 5]


def test_duplicates_are_caught_across_tens_of_thousands_of_rows() -> None:
    ids = [
        make_id_card(
            region=f"{310100 + n // 500:06d}",
            birth=date(1970, 1, 1),
            sequence=n % 500,
            sex=Sex.MALE,
        )
        for n in range(20_000)
    ]
    lines = [f"C01,3,1,,H{n},居民,,{number},,,,," for n, number in enumerate(ids)]
    data = csv_bytes(HEADER, *lines, f"C01,3,1,,H1,居民,,{ids[7]},,,,,", lines[-1])
    results = read(data)
    assert len(rows_of(results)) == 20_000
    assert [(e.row, e.message) for e in errors_of(results)] == [
        (20_002, "duplicate document number in this file (first at row 9)"),
        (20_003, "duplicate document number in this file (first at row 20001)"),
    ]


def test_blank_rows_are_skipped_and_row_numbers_follow_the_sheet() -> None:
    data = csv_bytes(
        "",
        HEADER,
        f"C01,3,1,402,H1,张建国,,{ZHANG},,,,,",
        ",,,,,,,,,,,,",
        "  ,  ",
        "",
        f"C01,3,1,403,H2,李梅,,{LI}",
    )
    results = read(data)
    assert [(r.row, r.name) for r in rows_of(results)] == [(3, "张建国"), (7, "李梅")]
    assert errors_of(results) == []


def test_errors_stop_after_max_errors_with_a_final_notice() -> None:
    bad = [f"C01,3,1,40{n},H{n},,,{LI},,,,," for n in range(5)]
    data = csv_bytes(HEADER, *bad, f"C01,3,1,402,H1,张建国,,{ZHANG},,,,,")
    results = read(data, max_errors=3)
    assert results == [
        RowError(2, "name", "name is required"),
        RowError(3, "name", "name is required"),
        RowError(3, "document_number", "duplicate document number in this file (first at row 2)"),
        RowError(4, None, "too many errors; stopped after 3"),
    ]


def test_exactly_max_errors_does_not_stop_the_file() -> None:
    data = csv_bytes(HEADER, f"C01,3,1,401,H1,,,{LI},,,,,", f"C01,3,1,402,H1,张建国,,{ZHANG},,,,,")
    results = read(data, max_errors=1)
    assert len(errors_of(results)) == 1
    assert [row.name for row in rows_of(results)] == ["张建国"]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("独居、残疾，老人", ("disabled", "elderly", "living_alone")),
        ("孕妇 | 透析 ; 卧床", ("bedridden", "dialysis", "pregnant")),
        ("婴儿,新生儿,聋哑", ("deaf_mute", "infant", "newborn")),
        (
            "慢病用药 纯老户 租户 老年",
            ("chronic_medication", "elderly", "elderly_only_household", "tenant"),
        ),
        ("Elderly;elderly;老人", ("elderly",)),
    ],
)
def test_tags_accept_chinese_aliases_and_mixed_separators(
    tags: str, expected: tuple[str, ...]
) -> None:
    [row] = read(csv_bytes(HEADER, f'C01,3,1,402,H1,张建国,,{ZHANG},,,,"{tags}",'))
    assert isinstance(row, LedgerRow)
    assert row.tags == expected


def test_unknown_tags_are_named() -> None:
    [error] = read(csv_bytes(HEADER, f"C01,3,1,402,H1,张建国,,{ZHANG},,,,独居、VIP、党员,"))
    assert isinstance(error, RowError)
    assert error.column == "tags"
    assert error.message == "unknown tags 'VIP', '党员'"


def test_short_rows_read_missing_cells_as_blank() -> None:
    data = csv_bytes(
        "compound,building,household,name,document_number,phone", f"C01,3,H1,张建国,{ZHANG}"
    )
    [row] = read(data)
    assert isinstance(row, LedgerRow)
    assert row.phone is None


def test_the_callers_spooled_upload_stays_open_and_reusable() -> None:
    lines = [
        f"C01,3,1,{n},H{n},居民{n},,"
        + make_id_card(region="330782", birth=date(1960, 1, 1), sequence=n, sex=Sex.FEMALE)
        + ",,,,,"
        for n in range(30)
    ]
    with tempfile.SpooledTemporaryFile(max_size=1024) as upload:
        upload.write(csv_bytes(HEADER, *lines))
        upload.seek(0)
        results = list(iter_ledger(upload, filename="ledger.csv"))
        assert [row.name for row in rows_of(results)] == [f"居民{n}" for n in range(30)]
        assert not upload.closed
        upload.seek(0)
        assert upload.read(9) == b"compound,"
