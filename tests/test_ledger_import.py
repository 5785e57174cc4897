"""The base-ledger import: formats and encodings, all-or-nothing, per-row errors,
idempotent re-imports, one event per batch, scope, and the export round trip."""

import io
from pathlib import Path

import httpx
import openpyxl
import pytest
from sqlalchemy import func, select

from cordon.platform import Platform
from services.registry.ledger import guide
from services.registry.ledger import service as ledger_service
from services.registry.models import Household, Resident, ResidentMove
from shared.auth import Principal
from tests.conftest import Town
from tests.support import committee_staff, id_number, make_compound, outbox_events, post

HEADER = "compound,building,unit,room,household,name,document_number,phone,tags,care_notes\n"


def ledger(rows: list[tuple[str, ...]]) -> str:
    return HEADER + "".join(",".join(r) + "\n" for r in rows)


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], content: bytes, name: str = "ledger.csv"
) -> httpx.Response:
    return await client.post(
        "/v1/imports/residents", files={"file": (name, content, "text/csv")}, headers=headers
    )


async def count(platform: Platform, model: type) -> int:
    runtime = platform.runtime("registry")
    async with runtime.uow(Principal.system()) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


def rows_for(code: str, n: int, *, start: int = 0) -> list[tuple[str, ...]]:
    return [
        (code, "1", "1", f"{100 + i}", f"H{i // 3}", f"居民{i}", id_number(), "", "", "")
        for i in range(start, start + n)
    ]


async def test_a_ledger_applies_whole_and_a_second_upload_changes_nothing(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    content = ledger(rows_for("P1", 9)).encode()
    first = await upload(client, town.operator, content)
    assert first.status_code == 201, first.text
    report = first.json()
    assert (report["status"], report["rows"], report["inserted"]) == ("applied", 9, 9)
    assert report["households_created"] == 3
    again = await upload(client, town.operator, content)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    renamed = await upload(client, town.operator, content.replace(b"\n", b"\r\n"), "copy.csv")
    assert renamed.json()["status"] == "applied"
    assert (renamed.json()["inserted"], renamed.json()["unchanged"]) == (0, 9)
    assert await count(platform, Resident) == 9
    assert await count(platform, Household) == 3
    imports = await client.get("/v1/imports", headers=town.operator)
    assert [i["status"] for i in imports.json()] == ["applied", "applied"]


async def test_a_bad_row_rejects_the_file_and_names_rows_and_columns(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    good = rows_for("P1", 4)
    duplicate = good[0][6]
    valid = id_number()
    bad_check = valid[:-1] + ("1" if valid[-1] == "0" else "0")
    rows = [
        *good,
        ("P1", "7", "1", "", "H9", "张三", id_number(), "", "", ""),
        ("P1", "1", "1", "", "H9", "张三", bad_check, "", "", ""),
        ("P1", "1", "1", "", "H9", "张三", duplicate, "12", "", ""),
        ("P9", "1", "1", "", "H9", "李四", id_number(), "", "", ""),
        ("P1", "1", "1", "", "H9", "王五", id_number(), "", "vip", ""),
    ]
    response = await upload(client, town.operator, ledger(rows).encode())
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = {(e["row"], e["column"]) for e in response.json()["errors"]}
    assert errors == {
        (6, "building"),
        (7, "document_number"),
        (8, "document_number"),
        (8, "phone"),
        (9, "compound"),
        (10, "tags"),
    }
    assert await count(platform, Resident) == 0
    assert await count(platform, Household) == 0

    places = ledger([*good, ("P1", "7", "1", "", "H9", "张三", id_number(), "", "", "")])
    response = await upload(client, town.operator, places.encode())
    assert response.status_code == 422
    assert [(e["row"], e["column"]) for e in response.json()["errors"]] == [(6, "building")]
    assert await count(platform, Resident) == 0


async def test_gbk_with_chinese_headers_and_xlsx_both_import(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    gbk = (
        "小区,楼栋,单元,房号,户号,姓名,身份证号,手机号,标签\n"
        f"P1,1,2,301,301,陈阿婆,{id_number(born='1941-02-03')},13812345678,独居、老人\n"
    ).encode("gbk")
    response = await upload(client, town.operator, gbk, "台账.csv")
    assert response.status_code == 201, response.text

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["compound", "building", "unit", "household", "name", "document_number"])
    sheet.append(["P1", "1", "1", "101", "周杰", id_number()])
    data = io.BytesIO()
    workbook.save(data)
    response = await client.post(
        "/v1/imports/residents",
        files={"file": ("ledger.xlsx", data.getvalue(), "application/octet-stream")},
        headers=town.operator,
    )
    assert response.status_code == 201, response.text
    residents = (await client.get("/v1/residents?name=陈", headers=town.operator)).json()["items"]
    assert residents[0]["tags"] == ["elderly", "living_alone"]
    assert await count(platform, Resident) == 2


async def test_a_changed_row_updates_and_a_new_household_records_a_move(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    rows = rows_for("P1", 3)
    await upload(client, town.operator, ledger(rows).encode())
    moved = list(rows[0])
    moved[4] = "H77"
    renamed = list(rows[1])
    renamed[5] = "新名字"
    response = await upload(
        client, town.operator, ledger([tuple(moved), tuple(renamed), rows[2]]).encode(), "v2.csv"
    )
    report = response.json()
    assert (report["inserted"], report["updated"], report["unchanged"]) == (0, 2, 1)
    assert await count(platform, ResidentMove) == 1
    assert await count(platform, Resident) == 3


async def test_one_event_per_batch(
    client: httpx.AsyncClient, town: Town, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_service, "BATCH", 10)
    await make_compound(client, town.id, town.operator, code="P1")
    response = await upload(client, town.operator, ledger(rows_for("P1", 25)).encode())
    assert response.status_code == 201
    events = await outbox_events(platform, "registry.residents.imported")
    assert [len(e["payload"]["residents"]) for e in events] == [10, 10, 5]
    assert {e["payload"]["import_id"] for e in events} == {response.json()["id"]}


async def test_committee_staff_import_only_into_their_compounds(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    mine = await make_compound(client, town.id, town.operator, code="P1")
    await make_compound(client, town.id, town.operator, code="P2")
    staff = await committee_staff(client, town, mine, "staff-p1")
    ok = await upload(client, staff, ledger(rows_for("P1", 2)).encode())
    assert ok.status_code == 201, ok.text
    theirs = await upload(client, staff, ledger(rows_for("P2", 2, start=5)).encode(), "p2.csv")
    # Every row names a compound outside their scope: not found, as a single request would be.
    assert theirs.status_code == 404
    assert {e["column"] for e in theirs.json()["errors"]} == {"compound"}

    # Someone registered in P2 cannot be pulled into P1 by a P1 ledger.
    p2_rows = rows_for("P2", 1, start=9)
    assert (await upload(client, town.operator, ledger(p2_rows).encode(), "op.csv")).is_success
    grab = [("P1", *p2_rows[0][1:])]
    response = await upload(client, staff, ledger(grab).encode(), "grab.csv")
    assert response.status_code == 422
    assert response.json()["errors"][0]["column"] == "document_number"
    assert await count(platform, Resident) == 3


async def test_too_large_and_unreadable_files_are_refused(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    wrong = await upload(client, town.operator, b"name,phone\nx,1\n")
    assert wrong.status_code == 422 and "compound" in wrong.json()["detail"]
    fake_xlsx = await upload(client, town.operator, b"not a workbook", "ledger.xlsx")
    assert fake_xlsx.status_code == 422
    platform.settings.max_upload_mb = 0
    big = await upload(client, town.operator, ledger(rows_for("P1", 2)).encode())
    assert big.status_code == 413
    assert await count(platform, Resident) == 0


async def test_an_export_imports_back_unchanged(client: httpx.AsyncClient, town: Town) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    rows = [(*r[:8], "elderly;dialysis", "needs transport") for r in rows_for("P1", 4)]
    await upload(client, town.operator, ledger(rows).encode())
    for export_format in ("csv", "xlsx"):
        exported = await client.get(
            f"/v1/exports/residents?format={export_format}", headers=town.operator
        )
        assert exported.status_code == 200
        back = await upload(client, town.operator, exported.content, f"export.{export_format}")
        assert back.json()["status"] == "applied", back.text
        assert (back.json()["unchanged"], back.json()["updated"]) == (4, 0)


async def test_households_are_identified_within_their_unit(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    # Public housing numbers households by room: room 101 of unit 1 and of unit 2 are two
    # families.
    rows = [
        ("P1", "1", "1", "101", "101", "张一", id_number(), "", "", ""),
        ("P1", "1", "2", "101", "101", "李二", id_number(), "", "", ""),
        ("P1", "1", "2", "101", "101", "李三", id_number(), "", "", ""),
    ]
    response = await upload(client, town.operator, ledger(rows).encode())
    assert response.status_code == 201, response.text
    assert response.json()["households_created"] == 2
    households = await client.get(
        f"/v1/households?building_id={compound.building_id}", headers=town.operator
    )
    by_unit = {h["unit_id"]: h["id"] for h in households.json()["items"]}
    assert set(by_unit) == set(compound.unit_ids)
    residents = await client.get(
        f"/v1/residents?building_id={compound.building_id}", headers=town.operator
    )
    for resident in residents.json()["items"]:
        assert resident["household_id"] == by_unit[resident["unit_id"]], resident["name"]


async def test_a_row_without_its_unit_in_a_building_of_units_is_refused(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    await post(
        client, "/v1/buildings", {"compound_id": compound.id, "code": "H", "units": []},
        town.operator,
    )  # fmt: skip
    rows = [
        ("P1", "1", "1", "101", "101", "张一", id_number(), "", "", ""),
        # Unit 1's household 101, or another family of building 1? The ledger must say.
        ("P1", "1", "", "101", "101", "张二", id_number(), "", "", ""),
    ]
    response = await upload(client, town.operator, ledger(rows).encode())
    assert response.status_code == 422
    assert [(e["row"], e["column"]) for e in response.json()["errors"]] == [(3, "unit")]
    assert "units" in response.json()["errors"][0]["message"]
    assert await count(platform, Household) == 0

    # A self-built house without units keeps its households by building.
    house = [
        ("P1", "H", "", "", "A", "王一", id_number(), "", "", ""),
        ("P1", "H", "", "", "B", "王二", id_number(), "", "", ""),
        ("P1", "H", "", "", "B", "王三", id_number(), "", "", ""),
    ]
    response = await upload(client, town.operator, ledger(house).encode(), "house.csv")
    assert response.status_code == 201, response.text
    assert response.json()["households_created"] == 2


async def test_a_unit_is_refused_in_a_self_built_house_that_has_households(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    house = await post(
        client, "/v1/buildings", {"compound_id": compound.id, "code": "H7", "units": []},
        town.operator,
    )  # fmt: skip
    rows = [("P1", "H7", "", "", "A", "王一", id_number(), "", "", "")]
    imported = await upload(client, town.operator, ledger(rows).encode(), "house.csv")
    assert imported.status_code == 201, imported.text

    unit = await client.post(
        "/v1/units", json={"building_id": house["id"], "code": "1"}, headers=town.operator
    )
    assert unit.status_code == 409, unit.text
    [error] = unit.json()["errors"]
    assert error["field"] == "building_id" and "households have no unit" in error["message"]
    units = await client.get(f"/v1/units?building_id={house['id']}", headers=town.operator)
    assert units.json()["items"] == []
    # The ledger still imports as it did: its households are still the house's.
    rows.append(("P1", "H7", "", "", "B", "王二", id_number(), "", "", ""))
    again = await upload(client, town.operator, ledger(rows).encode(), "house2.csv")
    assert again.status_code == 201, again.text


@pytest.mark.parametrize(
    "phone", ["1381234abcd", "abc13812345678", "13812345678x", "138-1234-567８a"]
)
async def test_a_phone_with_letters_or_stray_characters_is_a_row_error(
    client: httpx.AsyncClient, town: Town, platform: Platform, phone: str
) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    rows = [
        ("P1", "1", "1", "101", "101", "张一", id_number(), "13812345678", "", ""),
        ("P1", "1", "1", "101", "101", "张二", id_number(), phone, "", ""),
    ]
    response = await upload(client, town.operator, ledger(rows).encode())
    assert response.status_code == 422, response.text
    assert [(e["row"], e["column"]) for e in response.json()["errors"]] == [(3, "phone")]
    assert await count(platform, Resident) == 0


async def test_a_ledger_of_only_a_header_is_refused_as_having_no_residents(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    for name, content in (
        ("header.csv", HEADER.encode()),
        ("empty.csv", b""),
        ("blank.csv", HEADER.encode() + b",,,\n\n"),
    ):
        response = await upload(client, town.operator, content, name)
        assert response.status_code == 422, (name, response.text)
        assert response.json()["detail"] == "the file has no residents", name
    imports = await client.get("/v1/imports", headers=town.operator)
    assert imports.json() == []


async def test_the_filled_templates_import(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    await post(
        client, "/v1/buildings", {"compound_id": compound.id, "code": "H7", "units": []},
        town.operator,
    )  # fmt: skip
    rows = guide.examples()

    # No sign-in needed to download what a committee fills in.
    csv_template = await client.get("/v1/imports/template.csv")
    assert csv_template.status_code == 200
    assert csv_template.headers["content-type"].startswith("text/csv")
    text = csv_template.content.decode("utf-8-sig")
    assert text.startswith("小区编号,楼栋,单元")
    filled = text + "".join(",".join(row) + "\r\n" for row in rows[:2])
    response = await upload(client, town.operator, filled.encode("utf-8-sig"), "台账.csv")
    assert response.status_code == 201, response.text
    assert (response.json()["inserted"], response.json()["households_created"]) == (2, 2)

    xlsx_template = await client.get("/v1/imports/template.xlsx")
    assert xlsx_template.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_template.content))
    sheet = workbook.worksheets[0]
    for n, row in enumerate(rows[2:], start=2):
        for column, value in enumerate(row, start=1):
            sheet.cell(row=n, column=column, value=value or None)
    data = io.BytesIO()
    workbook.save(data)
    response = await upload(client, town.operator, data.getvalue(), "台账.xlsx")
    assert response.status_code == 201, response.text
    assert response.json()["inserted"] == 2
    residents = await client.get("/v1/residents?name=王秀英", headers=town.operator)
    assert residents.json()["items"][0]["tags"] == ["elderly", "living_alone"]


async def test_the_upload_documents_every_header_and_value_the_parser_accepts(
    client: httpx.AsyncClient,
) -> None:
    from services.registry.ledger.parse import DOCUMENT_TYPES, HEADER_ALIASES, SEXES, TAG_ALIASES

    openapi = (await client.get("/openapi.json")).json()
    description = openapi["paths"]["/v1/imports/residents"]["post"]["description"]
    for spelling in [*HEADER_ALIASES, *DOCUMENT_TYPES, *SEXES, *TAG_ALIASES]:
        if spelling:
            assert f"`{spelling}`" in description, spelling
    for must in ("must exist", "makes the household", "200 MB", "template.xlsx"):
        assert must in description


def test_docs_ledger_md_is_generated_from_the_parser() -> None:
    current = (Path(__file__).parent.parent / "docs" / "ledger.md").read_text()
    assert current == guide.render(), "docs/ledger.md is stale: run `cordon ledger-doc`"


async def test_a_town_file_over_two_committees_is_the_town_offices_not_each_committees(
    client: httpx.AsyncClient, town: Town
) -> None:
    """The town office's ledger covers compounds of two committees: the import is placed at
    the town. Its counts are the whole file's and cannot be split afterwards (it keeps no
    tally per compound), so it is not either committee's to read: neither's staff list it or
    open it (they read the whole file's counts, and its name, which may name the other
    committee); their residents of it they read as residents. The town office reads it whole;
    an import of their own compounds stays theirs."""
    p1 = await make_compound(client, town.id, town.operator, code="P1")
    p2 = await make_compound(client, town.id, town.operator, code="P2")
    content = ledger(rows_for("P1", 3) + rows_for("P2", 2, start=3)).encode()
    town_file = await upload(client, town.operator, content, "全镇名单.csv")
    assert town_file.status_code == 201, town_file.text
    town_id = town_file.json()["id"]
    listed = (await client.get("/v1/imports", headers=town.operator)).json()
    assert [(i["id"], i["rows"]) for i in listed] == [(town_id, 5)]
    for compound, code in ((p1, "P1"), (p2, "P2")):
        staff = await committee_staff(client, town, compound, f"staff-{code.lower()}")
        assert (await client.get("/v1/imports", headers=staff)).json() == [], code
        one = await client.get(f"/v1/imports/{town_id}", headers=staff)
        assert one.status_code == 404, f"{code}: {one.text}"
        # The same file from them is no duplicate of one they cannot read: it is imported as
        # theirs, and its rows outside their scope are refused as such (nothing changes).
        again = await upload(client, staff, content, "全镇名单.csv")
        assert again.status_code == 404, f"{code}: {again.text}"
        assert {e["column"] for e in again.json()["errors"]} == {"compound"}, code
    staff = await committee_staff(client, town, p1, "staff-p1-own")
    own = await upload(client, staff, ledger(rows_for("P1", 1, start=9)).encode(), "p1.csv")
    assert own.status_code == 201, own.text
    mine = (await client.get("/v1/imports", headers=staff)).json()
    assert [(i["id"], i["rows"]) for i in mine] == [(own.json()["id"], 1)]
