"""Households and residents through the API: registration, validation, search, counts,
moves, masking and the access log, idempotent creates."""

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cordon.platform import Platform
from services.registry.models import kernel
from shared.auth import Principal
from tests.conftest import Town
from tests.support import (
    Compound,
    committee_staff,
    id_number,
    make_building,
    make_compound,
    make_resident,
    post,
)


async def outbox_types(platform: Platform) -> list[str]:
    runtime = platform.runtime("registry")
    async with runtime.uow(Principal.system()) as uow:
        rows = await uow.session.execute(select(kernel.outbox.c.routing_key, kernel.outbox.c.body))
        return [r.routing_key for r in rows]


def _in_unit(compound: Compound, code: str) -> dict[str, Any]:
    """A household in the compound's first unit (its building has units)."""
    return {"building_id": compound.building_id, "unit_id": compound.unit_ids[0], "code": code}


async def test_a_resident_is_registered_with_birth_date_and_sex_from_the_id(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator, born="1949-12-31")
    assert resident["birth_date"] == "1949-12-31"
    assert resident["sex"] == "female"
    assert resident["phone"] == "+8613812345678"
    assert resident["compound_id"] == compound.id
    assert "registry.resident.registered" in await outbox_types(platform)


async def test_numbers_are_masked_unless_revealed_and_reveals_are_logged(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator)
    masked = (await client.get(f"/v1/residents/{resident['id']}", headers=town.operator)).json()
    assert masked["document_number"] != resident["document_number"]
    assert "*" in masked["document_number"] and masked["phone"] == "+86138****5678"

    revealed = await client.get(
        f"/v1/residents/{resident['id']}?reveal=true", headers=town.operator
    )
    assert revealed.json()["document_number"] == resident["document_number"]
    runtime = platform.runtime("registry")
    async with runtime.uow(Principal.system()) as uow:
        rows = (await uow.session.execute(select(kernel.access_log))).all()
    reads = [r for r in rows if r.endpoint == f"/v1/residents/{resident['id']}"]
    assert len(reads) == 1
    assert reads[0].principal_id and reads[0].fields == "birth_date,id_number,phone"
    assert [str(i) for i in reads[0].record_ids] == [resident["id"]]


async def test_bad_input_names_the_field(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    household = await post(client, "/v1/households", _in_unit(compound, "9"), town.operator)
    good = id_number()
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    cases = {
        "document_number": {"document_number": wrong_check},
        "phone": {"document_number": id_number(), "phone": "12345"},
        "tags.0": {"document_number": id_number(), "tags": ["vip"]},
        "birth_date": {"document_number": id_number(born="1990-01-01"), "birth_date": "1991-01-01"},
    }
    for field, extra in cases.items():
        body = {"household_id": household["id"], "name": "李四", **extra}
        response = await client.post("/v1/residents", json=body, headers=town.operator)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]

    unknown = await client.post(
        "/v1/residents",
        json={"household_id": compound.id, "name": "李四", "document_number": id_number()},
        headers=town.operator,
    )
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["field"] == "household_id"


async def test_a_document_number_is_registered_once(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    first = await make_resident(client, compound, town.operator)
    households = await client.get("/v1/households", headers=town.operator)
    body = {
        "household_id": households.json()["items"][0]["id"],
        "name": "Someone else",
        "document_number": first["document_number"],
    }
    again = await client.post("/v1/residents", json=body, headers=town.operator)
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "document_number"


async def test_a_retried_create_with_the_same_key_creates_one_resident(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    household = await post(client, "/v1/households", _in_unit(compound, "9"), town.operator)
    body = {"household_id": household["id"], "name": "赵六", "document_number": id_number()}
    headers = {**town.operator, "Idempotency-Key": "tablet-7:42"}
    first = await client.post("/v1/residents", json=body, headers=headers)
    retry = await client.post("/v1/residents", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers.get("idempotent-replayed") == "true"
    listed = await client.get(f"/v1/residents?household_id={household['id']}", headers=headers)
    assert len(listed.json()["items"]) == 1

    other = {**body, "name": "赵七", "document_number": id_number()}
    misuse = await client.post("/v1/residents", json=other, headers=headers)
    assert misuse.status_code == 409


async def test_search_by_fragment_place_tag_and_zone(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    old = await make_resident(
        client,
        compound,
        town.operator,
        name="王秀英",
        tags=["elderly", "living_alone"],
        born="1940-03-02",
        phone="13900001111",
    )
    await make_resident(client, compound, town.operator, household="102", name="李小龙")
    h = town.operator

    async def names(query: str) -> list[str]:
        response = await client.get(f"/v1/residents?{query}", headers=h)
        assert response.status_code == 200, response.text
        return sorted(r["name"] for r in response.json()["items"])

    assert await names("name=秀") == ["王秀英"]
    assert await names("phone=0000111") == ["王秀英"]
    assert await names(f"document={old['document_number'][-8:]}") == ["王秀英"]
    assert await names("tag=elderly&tag=living_alone") == ["王秀英"]
    assert await names(f"building_id={compound.building_id}") == ["李小龙", "王秀英"]
    assert await names("zone=sealed") == []

    counts = await client.get(
        "/v1/residents/counts?group_by=building&tag=elderly&tag=living_alone", headers=h
    )
    assert counts.json() == [
        {
            "compound_id": compound.id,
            "building_id": compound.building_id,
            "unit_id": None,
            "residents": 1,
            "tags": {"elderly": 1, "living_alone": 1},
        }
    ]


async def test_pages_follow_the_cursor(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    for n in range(5):
        await make_resident(client, compound, town.operator, household=f"H{n}", name=f"居民{n}")
    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/v1/residents?{query}", headers=town.operator)).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    bad = await client.get("/v1/residents?cursor=!!", headers=town.operator)
    assert bad.status_code == 422


async def test_a_move_keeps_history_and_is_published(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator)
    target = await post(
        client,
        "/v1/households",
        {"building_id": compound.building_id, "unit_id": compound.unit_ids[1], "code": "202"},
        town.operator,
    )
    moved = await client.post(
        f"/v1/residents/{resident['id']}/move",
        json={"household_id": target["id"], "reason": "moved in with daughter"},
        headers=town.operator,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["household_id"] == target["id"]
    assert moved.json()["unit_id"] == compound.unit_ids[1]
    history = await client.get(f"/v1/residents/{resident['id']}/moves", headers=town.operator)
    [move] = history.json()
    assert move["from_household_id"] == resident["household_id"]
    assert move["reason"] == "moved in with daughter" and move["moved_by"] == "operator"

    runtime = platform.runtime("registry")
    async with runtime.uow(Principal.system()) as uow:
        bodies = (await uow.session.scalars(select(kernel.outbox.c.body))).all()
    updates = [json.loads(b) for b in bodies if '"registry.resident.updated"' in b]
    assert [u["payload"]["moved"] for u in updates] == [True]


async def test_an_edit_changes_only_what_differs(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator)
    edited = await client.patch(
        f"/v1/residents/{resident['id']}",
        json={"tags": ["pregnant"], "care_notes": "due in May"},
        headers=town.operator,
    )
    assert edited.status_code == 200
    assert edited.json()["tags"] == ["pregnant"] and edited.json()["care_notes"] == "due in May"
    assert edited.json()["name"] == resident["name"]


async def test_an_edit_of_a_field_it_does_not_accept_is_refused_naming_it(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator)
    path = f"/v1/residents/{resident['id']}"
    edited = await client.patch(
        path, json={"document_number": id_number(), "care_notes": "x"}, headers=town.operator
    )
    assert edited.status_code == 422, edited.text
    assert [e["field"] for e in edited.json()["errors"]] == ["document_number"]
    unchanged = (await client.get(path, headers=town.operator)).json()
    assert unchanged["care_notes"] == resident["care_notes"]
    # The same rule for every PATCH body, and the OpenAPI says so to clients.
    document = (await client.get("/openapi.json")).json()
    schema = document["components"]["schemas"]["ResidentUpdate"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("phone", ["1381234abcd", "abc13812345678", "13812345678x"])
async def test_a_phone_with_letters_is_refused_naming_the_field(
    client: httpx.AsyncClient, town: Town, phone: str
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    household = await post(client, "/v1/households", _in_unit(compound, "9"), town.operator)
    body = {"household_id": household["id"], "name": "王五", "document_number": id_number()}
    response = await client.post(
        "/v1/residents", json={**body, "phone": phone}, headers=town.operator
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["phone"]


async def test_each_unit_numbers_its_own_households(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    for unit_id in compound.unit_ids:
        body = {"building_id": compound.building_id, "unit_id": unit_id, "code": "101"}
        await post(client, "/v1/households", body, town.operator)
    again = {"building_id": compound.building_id, "unit_id": compound.unit_ids[0], "code": "101"}
    response = await client.post("/v1/households", json=again, headers=town.operator)
    assert response.status_code == 409
    assert "unit 1 of building 1" in response.json()["detail"]


async def test_households_are_listed_by_compound(client: httpx.AsyncClient, town: Town) -> None:
    first = await make_compound(client, town.id, town.operator, code="P1")
    second = await make_compound(client, town.id, town.operator, code="P2")
    mine = await make_resident(client, first, town.operator, household="101")
    await make_resident(client, second, town.operator, household="101")
    listed = await client.get(f"/v1/households?compound_id={first.id}", headers=town.operator)
    assert [h["id"] for h in listed.json()["items"]] == [mine["household_id"]]


async def test_a_household_in_a_building_of_units_names_its_unit(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    # Household 101 of which stairwell? Each unit numbers its own households.
    unplaced = await client.post(
        "/v1/households",
        json={"building_id": compound.building_id, "code": "101"},
        headers=town.operator,
    )
    assert unplaced.status_code == 422, unplaced.text
    assert unplaced.headers["content-type"] == "application/problem+json"
    [error] = unplaced.json()["errors"]
    assert error["field"] == "unit_id"
    assert "building 1 has units: say which unit" in error["message"]
    listed = await client.get(
        f"/v1/households?building_id={compound.building_id}", headers=town.operator
    )
    assert listed.json()["items"] == []

    # A unit of another building, of this compound or of another committee's, is no place
    # for it either.
    second = await make_building(client, compound, town.operator, code="2")
    elsewhere = {"building_id": compound.building_id, "unit_id": second.unit_ids[0], "code": "1"}
    response = await client.post("/v1/households", json=elsewhere, headers=town.operator)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["unit_id"]
    assert "is not in building 1" in response.json()["detail"]
    theirs = await make_compound(client, town.id, town.operator, code="P2")
    staff = await committee_staff(client, town, compound, "staff-p1")
    foreign = {"building_id": compound.building_id, "unit_id": theirs.unit_ids[0], "code": "1"}
    response = await client.post("/v1/households", json=foreign, headers=staff)
    assert response.status_code == 404, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["unit_id"]
    assert theirs.building_id not in response.text
    listed = await client.get(f"/v1/households?compound_id={compound.id}", headers=town.operator)
    assert listed.json()["items"] == []

    # A self-built house without units keeps its households by building.
    house = await post(
        client, "/v1/buildings", {"compound_id": compound.id, "code": "H7"}, town.operator
    )
    by_building = await post(
        client, "/v1/households", {"building_id": house["id"], "code": "A"}, town.operator
    )
    assert by_building["unit_id"] is None


async def test_a_blank_household_code_or_resident_name_is_refused_and_both_are_trimmed(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    blank = await client.post(
        "/v1/households", json=_in_unit(compound, "   "), headers=town.operator
    )
    assert blank.status_code == 422, blank.text
    assert [e["field"] for e in blank.json()["errors"]] == ["code"]
    # " 7 " is household 7, as the ledger reads it: not a second family beside it.
    seven = await post(client, "/v1/households", _in_unit(compound, " 7 "), town.operator)
    assert seven["code"] == "7"
    again = await client.post("/v1/households", json=_in_unit(compound, "7"), headers=town.operator)
    assert again.status_code == 409, again.text

    body = {"household_id": seven["id"], "document_number": id_number()}
    nameless = await client.post(
        "/v1/residents", json={**body, "name": " \t "}, headers=town.operator
    )
    assert nameless.status_code == 422, nameless.text
    assert [e["field"] for e in nameless.json()["errors"]] == ["name"]
    resident = await post(client, "/v1/residents", {**body, "name": " 王五 "}, town.operator)
    assert resident["name"] == "王五"
    path = f"/v1/residents/{resident['id']}"
    emptied = await client.patch(path, json={"name": "  "}, headers=town.operator)
    assert emptied.status_code == 422, emptied.text
    assert [e["field"] for e in emptied.json()["errors"]] == ["name"]
    assert (await client.get(path, headers=town.operator)).json()["name"] == "王五"
