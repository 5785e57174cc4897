"""What the kernel's HTTP boundary guarantees to every service: integrity conflicts as 409
problems naming the field, a 500 that keeps its correlation id, idempotency keyed on the
whole body, free text and times refused when a spreadsheet or a clock cannot hold them,
times answered in one format, and exports that a spreadsheet cannot turn into formulas."""

import csv
import io
import json
import logging
import uuid
from datetime import datetime

import httpx
import openpyxl
import pytest
from sqlalchemy import update

from cordon.platform import Platform
from services.registry.demo import bootstrap_town
from services.registry.models import Resident
from shared.auth import Principal
from shared.http import service_router
from shared.observability import JsonFormatter
from tests.conftest import Town
from tests.support import make_compound, make_resident, post
from tests.test_ledger_import import ledger, rows_for, upload


async def test_a_duplicate_grid_code_is_a_409_naming_the_field(
    client: httpx.AsyncClient, town: Town
) -> None:
    body = {"town_id": str(town.id), "code": "G1", "name": "Grid one"}
    await post(client, "/v1/grids", body, town.operator)
    again = await client.post("/v1/grids", json=body, headers=town.operator)
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["errors"] == [{"field": "code", "message": again.json()["detail"]}]
    assert "code" in again.json()["detail"]
    compound = await make_compound(client, town.id, town.operator, code="P1")
    for path, body in [
        ("/v1/committees", {"town_id": str(town.id), "code": "KP1", "name": "Again"}),
        ("/v1/buildings", {"compound_id": compound.id, "code": "1"}),
        ("/v1/units", {"building_id": compound.building_id, "code": "2"}),
    ]:
        taken = await client.post(path, json=body, headers=town.operator)
        assert taken.status_code == 409, (path, taken.text)
        assert [e["field"] for e in taken.json()["errors"]] == ["code"]


async def test_names_taken_in_another_town_are_409s_naming_the_field(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    await bootstrap_town(
        platform.runtime("registry"),
        town_code="T2",
        town_name="Hillside Street",
        username="other-operator",
        password="operator-pass-2",
    )
    other = await town.sign_in("other-operator", "operator-pass-2")
    taken = await client.post(
        "/v1/users",
        json={
            "username": "other-operator",
            "password": "a-long-password",
            "role": "committee_staff",
            "town_id": str(town.id),
            "committee_id": (
                await make_compound(client, town.id, town.operator, code="P1")
            ).committee_id,
        },
        headers=town.operator,
    )
    assert taken.status_code == 409, taken.text
    assert [e["field"] for e in taken.json()["errors"]] == ["username"]
    # Compound codes are unique across towns; the other town's operator cannot see ours.
    their_committee = await post(
        client,
        "/v1/committees",
        {"town_id": str(_town_of(other)), "code": "K9", "name": "K"},
        other,
    )
    clash = await client.post(
        "/v1/compounds",
        json={
            "committee_id": their_committee["id"],
            "code": "P1",
            "name": "Same code",
            "kind": "villas",
        },
        headers=other,
    )
    assert clash.status_code == 409, clash.text
    assert [e["field"] for e in clash.json()["errors"]] == ["code"]


def _town_of(headers: dict[str, str]) -> uuid.UUID:
    import jwt

    token = headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    return uuid.UUID(claims["scope"]["towns"][0])


async def test_a_500_keeps_the_requests_correlation_id(
    platform: Platform, town: Town, client: httpx.AsyncClient
) -> None:
    from cordon.app import create_app

    router = service_router("registry")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    app = create_app(platform, with_workers=False, migrate=False)
    app.include_router(router)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cordon.test") as http:
            failed = await http.get("/v1/boom", headers={"X-Correlation-ID": "night-500"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["correlation_id"] == "night-500"
    assert failed.headers["x-correlation-id"] == "night-500"
    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    # Only the boundary's line: the garbage collector may log another test's leftovers meanwhile.
    errors = [e for e in logged if e["level"] == "error" and e["logger"] == "shared.http"]
    assert errors and errors[0]["correlation_id"] == "night-500"
    assert "a bug" in errors[0]["error"]


async def test_a_reused_key_with_another_file_of_the_same_size_is_refused(
    client: httpx.AsyncClient, town: Town
) -> None:
    await make_compound(client, town.id, town.operator, code="P1")
    first = ledger(rows_for("P1", 3)).encode()
    second = first.replace("居民1".encode(), "居民7".encode())
    assert len(first) == len(second) and first != second
    keyed = {**town.operator, "Idempotency-Key": "upload-1"}
    applied = await upload(client, keyed, first)
    assert applied.status_code == 201, applied.text
    other = await upload(client, keyed, second)
    assert other.status_code == 409, other.text
    retry = await upload(client, keyed, first)
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == applied.json()


async def test_exports_write_formulas_as_text(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    notes = ['=HYPERLINK("http://x","y")', "+1+2", "-3", "@SUM(A1)"]
    for n, note in enumerate(notes):
        resident = await make_resident(client, compound, town.operator, name=f"甲{n}")
        changed = await client.patch(
            f"/v1/residents/{resident['id']}", json={"care_notes": note}, headers=town.operator
        )
        assert changed.status_code == 200, changed.text
    csv_export = await client.get("/v1/exports/residents?format=csv", headers=town.operator)
    cells = [row[-1] for row in csv.reader(io.StringIO(csv_export.content.decode("utf-8-sig")))]
    assert sorted(cells[1:]) == sorted("'" + note for note in notes)
    xlsx_export = await client.get("/v1/exports/residents?format=xlsx", headers=town.operator)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_export.content)).active
    assert sheet is not None
    written = [row[-1] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in written)
    assert sorted(str(cell.value) for cell in written) == sorted(notes)
    # What was exported imports back as it was.
    back = await upload(client, town.operator, csv_export.content, "export.csv")
    assert back.status_code == 201, back.text
    assert (back.json()["unchanged"], back.json()["updated"]) == (len(notes), 0)


async def test_exports_escape_what_a_spreadsheet_cannot_hold(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator)
    async with platform.runtime("registry").uow(Principal.system()) as uow:
        stored = "insulin\x01daily"
        await uow.session.execute(
            update(Resident)
            .where(Resident.id == uuid.UUID(resident["id"]))
            .values(care_notes=stored)
        )
        await uow.commit()
    exported = await client.get("/v1/exports/residents?format=xlsx", headers=town.operator)
    assert exported.status_code == 200, exported.text
    sheet = openpyxl.load_workbook(io.BytesIO(exported.content)).active
    assert sheet is not None
    assert sheet.cell(row=2, column=13).value == "insulin\ufffddaily"


async def test_free_text_refuses_control_characters(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator)
    refused = await client.patch(
        f"/v1/residents/{resident['id']}",
        json={"care_notes": "insulin\u0001daily"},
        headers=town.operator,
    )
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["care_notes"]
    named = await client.post(
        "/v1/committees",
        json={"town_id": str(town.id), "code": "K2", "name": "East\x00"},
        headers=town.operator,
    )
    assert named.status_code == 422 and named.json()["errors"][0]["field"] == "name"
    kept = await client.patch(
        f"/v1/residents/{resident['id']}",
        json={"care_notes": "insulin\tdaily,\nlow-salt diet"},
        headers=town.operator,
    )
    assert kept.status_code == 200 and kept.json()["care_notes"] == "insulin\tdaily,\nlow-salt diet"


async def test_times_without_a_zone_are_refused_and_answered_in_utc(
    client: httpx.AsyncClient, town: Town, workers: None
) -> None:
    # Workers run: scheduling a round waits for the testing directory to catch up.
    body = {"town_id": str(town.id), "name": "Dawn", "scope": {"kind": "town"}}
    naive = await client.post(
        "/v1/rounds",
        json={**body, "starts_at": "2022-04-02T05:00:00", "ends_at": "2022-04-02T11:00:00+08:00"},
        headers=town.operator,
    )
    assert naive.status_code == 422, naive.text
    assert [e["field"] for e in naive.json()["errors"]] == ["starts_at"]
    created = await client.post(
        "/v1/rounds",
        json={
            **body,
            "starts_at": "2022-04-02T05:00:00+08:00",
            "ends_at": "2022-04-02T11:00:00+08:00",
        },
        headers=town.operator,
    )
    assert created.status_code == 201, created.text
    assert created.json()["starts_at"] == "2022-04-01T21:00:00Z"
    read = await client.get(f"/v1/rounds/{created.json()['id']}", headers=town.operator)
    assert read.json()["starts_at"] == created.json()["starts_at"]
    assert read.json()["ends_at"] == created.json()["ends_at"] == "2022-04-02T03:00:00Z"
    assert datetime.fromisoformat(read.json()["created_at"]).utcoffset() is not None
    assert read.json()["created_at"].endswith("Z")


async def test_a_time_without_a_zone_is_stored_as_utc_on_every_backend(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from sqlalchemy import select

    from services.registry.models import kernel

    # The process runs in Shanghai: a driver must not read a naive time as local time.
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        naive = datetime(2022, 4, 2, 5, 0)
        table = kernel.inbox
        async with platform.runtime("registry").uow(Principal.system()) as uow:
            await uow.session.execute(
                table.insert().values(consumer="clock", event_id=uuid.uuid4(), processed_at=naive)
            )
            await uow.commit()
        async with platform.runtime("registry").uow(Principal.system()) as uow:
            stored = await uow.session.scalar(
                select(table.c.processed_at).where(table.c.consumer == "clock")
            )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert stored is not None
    assert stored.isoformat() == "2022-04-02T05:00:00+00:00"


def test_csv_cells_that_start_a_formula_are_neutralised_and_read_back() -> None:
    from shared.spreadsheets import cell_text, csv_cell, csv_value

    for value in ("=1+2", "+86 138", "-3", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(value) == "'" + value
        assert csv_value(csv_cell(value)) == value
    for value in ("王秀英", "1+2", "'quoted'", ""):
        assert csv_cell(value) == value
        assert csv_value(value) == value
    assert cell_text("a\x00b\x1fc\ud800d\tok\n") == "a\ufffdb\ufffdc\ufffdd\tok\n"
