"""Committee staff of one committee get nothing of another's residents, through every
registry endpoint: every GET route in the OpenAPI document is called with the other
compound's ids in its path and filters, and no answer may carry their residents."""

import re
from typing import Any

import httpx

from tests.conftest import Town
from tests.support import committee_staff, make_compound, make_resident, post

SECRET_NAMES = ("乙区秘密居民", "乙区另一居民")


async def _other_compound(client: httpx.AsyncClient, town: Town) -> dict[str, Any]:
    """Compound B with residents, a household, an import and a zone; returns its ids."""
    other = await make_compound(client, town.id, town.operator, code="PB")
    first = await make_resident(client, other, town.operator, name=SECRET_NAMES[0])
    second = await make_resident(
        client, other, town.operator, household="B2", name=SECRET_NAMES[1], tags=["elderly"]
    )
    ledger = (
        "compound,building,unit,household,name,document_number\n"
        f"PB,1,1,B3,乙区导入居民,{_fresh_id()}\n"
    )
    imported = await client.post(
        "/v1/imports/residents",
        files={"file": ("b.csv", ledger.encode(), "text/csv")},
        headers=town.operator,
    )
    assert imported.status_code == 201, imported.text
    await client.post(
        "/v1/zones",
        json={"building_id": other.building_id, "level": "sealed", "reason": "case in PB"},
        headers=town.operator,
    )
    return {
        "compound": other,
        "residents": [first, second],
        "import_id": imported.json()["id"],
        "secrets": [
            *SECRET_NAMES,
            "乙区导入居民",
            first["id"],
            second["id"],
            first["document_number"],
            second["document_number"],
            first["household_id"],
        ],
    }


def _fresh_id() -> str:
    from tests.support import id_number

    return id_number()


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), ids["resident_id"]), path)


async def test_committee_staff_see_no_resident_of_another_committee(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await make_compound(client, town.id, town.operator, code="PA")
    await make_resident(client, mine, town.operator, name="甲区居民")
    other = await _other_compound(client, town)
    staff = await committee_staff(client, town, mine, "staff-a")
    compound_b = other["compound"]
    ids = {
        "compound_id": compound_b.id,
        "building_id": compound_b.building_id,
        "unit_id": compound_b.unit_ids[0],
        "household_id": other["residents"][0]["household_id"],
        "resident_id": other["residents"][0]["id"],
        "import_id": other["import_id"],
    }
    filters = "&".join(f"{k}={v}" for k, v in ids.items() if k != "resident_id")
    openapi = (await client.get("/openapi.json")).json()
    checked = 0
    for path, operations in openapi["paths"].items():
        if not path.startswith("/v1/") or "get" not in operations:
            continue
        url = _fill(path, ids)
        for query in ("", "?reveal=true", f"?{filters}", f"?{filters}&reveal=true"):
            response = await client.get(url + query, headers=staff)
            assert response.status_code < 500, f"{url}{query}: {response.text}"
            # A 404 may repeat the id the caller sent; anything else of theirs is a leak.
            leaked = [s for s in other["secrets"] if s in response.text and s not in url + query]
            assert not leaked, f"GET {url}{query} showed another committee's data: {leaked}"
            checked += 1
    assert checked >= 40

    mine_only = (await client.get("/v1/residents", headers=staff)).json()["items"]
    assert [r["name"] for r in mine_only] == ["甲区居民"]


async def test_committee_staff_cannot_change_another_committees_residents(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await make_compound(client, town.id, town.operator, code="PA")
    my_resident = await make_resident(client, mine, town.operator, name="甲区居民")
    other = await _other_compound(client, town)
    staff = await committee_staff(client, town, mine, "staff-a")
    theirs = other["residents"][0]
    attempts = [
        ("PATCH", f"/v1/residents/{theirs['id']}", {"name": "changed"}),
        (
            "POST",
            f"/v1/residents/{theirs['id']}/move",
            {"household_id": my_resident["household_id"]},
        ),
        ("POST", "/v1/households", {"building_id": other["compound"].building_id, "code": "X"}),
        (
            "POST",
            "/v1/residents",
            {"household_id": theirs["household_id"], "name": "x", "document_number": _fresh_id()},
        ),
        (
            "POST",
            "/v1/zones",
            {"building_id": other["compound"].building_id, "level": None, "reason": "lift"},
        ),
    ]
    for method, url, body in attempts:
        response = await client.request(method, url, json=body, headers=staff)
        assert response.status_code in (403, 404), f"{method} {url}: {response.status_code}"
        sent = url + str(body)
        assert not [s for s in other["secrets"] if s in response.text and s not in sent]
    unchanged = await client.get(f"/v1/residents/{theirs['id']}", headers=town.operator)
    assert unchanged.json()["name"] == theirs["name"]
    assert unchanged.json()["household_id"] == theirs["household_id"]
    zones = await client.get(
        f"/v1/zones?building_id={other['compound'].building_id}", headers=town.operator
    )
    assert zones.json()["items"][0]["level"] == "sealed"
    await post(client, "/v1/households", {"building_id": mine.building_id, "code": "OK"}, staff)
