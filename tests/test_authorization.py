"""Committee staff of one committee get nothing of another's residents, staff, volunteers,
teams or assignments, through every registry endpoint: every GET route in the OpenAPI
document is called with the other committee's ids in its path and filters, and no answer
may carry their data."""

import itertools
import re
from typing import Any

import httpx

from tests.conftest import Town
from tests.support import (
    Compound,
    account,
    committee_staff,
    make_compound,
    make_resident,
    post,
)

SECRET_NAMES = ("乙区秘密居民", "乙区另一居民")
PEOPLE_NAMES = (
    "乙区干部",
    "乙区书记",
    "乙区志愿者",
    "乙委志愿者",
    "乙区医疗队",
    "乙委宣传队",
    "乙区网格",
)


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
    people = await _other_people(client, town, other)
    return {
        "compound": other,
        "residents": [first, second],
        "import_id": imported.json()["id"],
        "people": people,
        "secrets": [
            *SECRET_NAMES,
            "乙区导入居民",
            first["id"],
            second["id"],
            first["document_number"],
            second["document_number"],
            first["household_id"],
            *PEOPLE_NAMES,
            *people.values(),
        ],
    }


async def _other_people(client: httpx.AsyncClient, town: Town, other: Compound) -> dict[str, str]:
    """Compound B's and committee B's own staff, volunteers, teams, a grid and assignments."""
    h = town.operator
    in_compound = {"compound_id": other.id}
    in_committee = {"committee_id": other.committee_id}
    staff = await post(client, "/v1/staff", {**in_compound, "name": "乙区干部", "title": "t"}, h)
    secretary = await post(
        client, "/v1/staff", {**in_committee, "name": "乙区书记", "title": "secretary"}, h
    )
    helper = await post(
        client, "/v1/volunteers", {**in_compound, "name": "乙区志愿者", "kind": "service"}, h
    )
    pool = await post(
        client, "/v1/volunteers", {**in_committee, "name": "乙委志愿者", "kind": "expert"}, h
    )
    team = await post(
        client, "/v1/teams", {**in_compound, "kind": "medical", "name": "乙区医疗队"}, h
    )
    publicity = await post(
        client, "/v1/teams", {**in_committee, "kind": "publicity", "name": "乙委宣传队"}, h
    )
    for person_kind, person in (("volunteer", helper), ("staff", secretary)):
        body = {"person_kind": person_kind, "person_id": person["id"]}
        await post(client, f"/v1/teams/{team['id']}/members", body, h)
        await post(client, f"/v1/teams/{publicity['id']}/members", body, h)
    grid = await post(
        client,
        "/v1/grids",
        {
            "town_id": str(town.id),
            **in_compound,
            "code": "GB",
            "name": "乙区网格",
            "building_ids": [other.building_id],
        },
        h,
    )
    assignment = await post(
        client,
        "/v1/assignments",
        {"person_kind": "volunteer", "person_id": pool["id"], "building_id": other.building_id},
        h,
    )
    on_grid = await post(
        client,
        "/v1/assignments",
        {"person_kind": "staff", "person_id": staff["id"], "grid_id": grid["id"]},
        h,
    )
    return {
        "staff_id": staff["id"],
        "secretary_id": secretary["id"],
        "volunteer_id": helper["id"],
        "person_id": pool["id"],
        "team_id": team["id"],
        "publicity_id": publicity["id"],
        "grid_id": grid["id"],
        "assignment_id": assignment["id"],
        "grid_assignment_id": on_grid["id"],
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
        "committee_id": compound_b.committee_id,
        **other["people"],
    }
    filters = "&".join(f"{k}={v}" for k, v in ids.items() if k != "resident_id")
    openapi = (await client.get("/openapi.json")).json()
    checked = 0
    for path, operations in openapi["paths"].items():
        if not path.startswith("/v1/") or "get" not in operations:
            continue
        # Each resource has a second row of B (committee-level, or on a grid): try it too.
        second = {
            "staff_id": ids["secretary_id"],
            "volunteer_id": ids["person_id"],
            "team_id": ids["publicity_id"],
            "assignment_id": ids["grid_assignment_id"],
        }
        urls = dict.fromkeys([_fill(path, ids), _fill(path, {**ids, **second})])
        for url, query in itertools.product(
            urls, ("", "?reveal=true", f"?{filters}", f"?{filters}&reveal=true")
        ):
            response = await client.get(url + query, headers=staff)
            assert response.status_code < 500, f"{url}{query}: {response.text}"
            # A 404 may repeat the id the caller sent; anything else of theirs is a leak.
            leaked = [s for s in other["secrets"] if s in response.text and s not in url + query]
            assert not leaked, f"GET {url}{query} showed another committee's data: {leaked}"
            checked += 1
    assert checked >= 80

    mine_only = (await client.get("/v1/residents", headers=staff)).json()["items"]
    assert [r["name"] for r in mine_only] == ["甲区居民"]
    for resource in ("staff", "volunteers", "teams", "assignments"):
        listed = await client.get(f"/v1/{resource}", headers=town.operator)
        assert len(listed.json()["items"]) == 2, f"the operator sees {resource} of both levels"


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
    people = other["people"]
    own_volunteer = await post(
        client,
        "/v1/volunteers",
        {"compound_id": mine.id, "name": "甲区志愿者", "kind": "service"},
        staff,
    )
    attempts += [
        ("PATCH", f"/v1/staff/{people['staff_id']}", {"name": "changed"}),
        ("PATCH", f"/v1/staff/{people['secretary_id']}", {"name": "changed"}),
        ("PATCH", f"/v1/volunteers/{people['person_id']}", {"availability": "never"}),
        ("PATCH", f"/v1/teams/{people['publicity_id']}", {"name": "changed"}),
        ("DELETE", f"/v1/teams/{people['team_id']}/members/{people['volunteer_id']}", None),
        ("DELETE", f"/v1/assignments/{people['assignment_id']}", None),
        (
            "POST",
            f"/v1/teams/{people['publicity_id']}/members",
            {"person_kind": "volunteer", "person_id": own_volunteer["id"]},
        ),
        (
            "POST",
            "/v1/assignments",
            {
                "person_kind": "volunteer",
                "person_id": own_volunteer["id"],
                "building_id": other["compound"].building_id,
            },
        ),
        (
            "POST",
            "/v1/assignments",
            {
                "person_kind": "volunteer",
                "person_id": own_volunteer["id"],
                "grid_id": people["grid_id"],
            },
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
    listed = await client.get(f"/v1/staff/{people['secretary_id']}", headers=town.operator)
    assert listed.json()["name"] == "乙区书记"
    members = await client.get(f"/v1/teams/{people['team_id']}/members", headers=town.operator)
    assert len(members.json()) == 2
    assignments = await client.get("/v1/assignments", headers=town.operator)
    assert len(assignments.json()["items"]) == 2
    zones = await client.get(
        f"/v1/zones?building_id={other['compound'].building_id}", headers=town.operator
    )
    assert zones.json()["items"][0]["level"] == "sealed"
    own = {"building_id": mine.building_id, "unit_id": mine.unit_ids[0], "code": "OK"}
    await post(client, "/v1/households", own, staff)


# --- Holes of issue 7, each failing on the code before it -----------------------------------


async def _two_committees(client: httpx.AsyncClient, town: Town) -> tuple[Compound, Compound]:
    mine = await make_compound(client, town.id, town.operator, code="PA")
    theirs = await make_compound(client, town.id, town.operator, code="PB")
    await make_resident(client, mine, town.operator, name="甲区居民")
    await make_resident(client, theirs, town.operator, name=SECRET_NAMES[0])
    return mine, theirs


async def _users(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    listed = await client.get("/v1/users?limit=500", headers=headers)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


async def test_committee_staff_cannot_open_an_account_for_a_person_they_do_not_manage(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine, theirs = await _two_committees(client, town)
    h = town.operator
    # Town-level staff, and one of committee A's own volunteers, both put in charge of B's
    # building by the town office: an account for either would see B's residents.
    town_staff = await post(
        client, "/v1/staff", {"town_id": str(town.id), "name": "镇干部", "title": "town"}, h
    )
    lent = await post(
        client,
        "/v1/volunteers",
        {"compound_id": mine.id, "name": "借调志愿者", "kind": "service"},
        h,
    )
    for kind, person in (("staff", town_staff), ("volunteer", lent)):
        body = {"person_kind": kind, "person_id": person["id"], "building_id": theirs.building_id}
        await post(client, "/v1/assignments", body, h)
    staff = await committee_staff(client, town, mine, "staff-a")
    for kind, person in (("staff", town_staff), ("volunteer", lent)):
        for role in ("grid_leader", "building_leader", "volunteer"):
            response = await client.post(
                "/v1/users",
                json={
                    "username": f"takeover-{role}-{kind}",
                    "password": "takeover-pass-1",
                    "role": role,
                    "town_id": str(town.id),
                    "person_kind": kind,
                    "person_id": person["id"],
                },
                headers=staff,
            )
            assert response.status_code in (403, 404), f"{role} for {kind}: {response.text}"
    assert not [u for u in await _users(client, h) if u["username"].startswith("takeover")]
    # Their own volunteer, assigned in their own compound, is theirs to give an account.
    own = await post(
        client,
        "/v1/volunteers",
        {"compound_id": mine.id, "name": "甲区志愿者", "kind": "service"},
        h,
    )
    body = {"person_kind": "volunteer", "person_id": own["id"], "building_id": mine.building_id}
    await post(client, "/v1/assignments", body, staff)
    account_body = {
        "username": "own-leader",
        "password": "own-leader-pass-1",
        "role": "building_leader",
        "town_id": str(town.id),
        "person_kind": "volunteer",
        "person_id": own["id"],
    }
    await post(client, "/v1/users", account_body, staff)
    # One active account per person, whoever asks.
    second = await client.post("/v1/users", json={**account_body, "username": "own-2"}, headers=h)
    assert second.status_code == 409 and second.json()["errors"][0]["field"] == "person_id"


async def test_users_are_listed_in_pages_to_account_managers_of_their_scope_only(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine, theirs = await _two_committees(client, town)
    await committee_staff(client, town, theirs, "staff-b")
    staff = await committee_staff(client, town, mine, "staff-a")
    volunteer = await post(
        client,
        "/v1/volunteers",
        {"compound_id": theirs.id, "name": "乙区志愿者", "kind": "service"},
        town.operator,
    )
    helper = await account(
        client,
        town,
        username="helper-b",
        role="volunteer",
        person_kind="volunteer",
        person_id=volunteer["id"],
    )
    seen = {u["username"] for u in await _users(client, staff)}
    assert "staff-a" in seen and not seen & {"staff-b", "helper-b", "operator"}
    assert (await client.get("/v1/users", headers=helper)).status_code == 403
    first = (await client.get("/v1/users?limit=2", headers=town.operator)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = await client.get(f"/v1/users?cursor={first['next_cursor']}", headers=town.operator)
    names = {u["username"] for u in first["items"] + rest.json()["items"]}
    assert names == {"operator", "staff-a", "staff-b", "helper-b"}


async def test_grids_assignments_and_imports_of_another_committee_stay_hidden(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine, theirs = await _two_committees(client, town)
    h = town.operator
    # Made by the town office, not placed on a compound, covering only B's building.
    grid = await post(
        client,
        "/v1/grids",
        {
            "town_id": str(town.id),
            "code": "GB",
            "name": "乙区网格",
            "building_ids": [theirs.building_id],
        },
        h,
    )
    town_staff = await post(
        client, "/v1/staff", {"town_id": str(town.id), "name": "镇干部", "title": "town"}, h
    )
    body = {"person_kind": "staff", "person_id": town_staff["id"], "grid_id": grid["id"]}
    on_grid = await post(client, "/v1/assignments", body, h)
    ledger = (
        "compound,building,unit,household,name,document_number\n"
        f"PB,1,1,B9,乙区导入居民,{_fresh_id()}\n"
    )
    imported = await client.post(
        "/v1/imports/residents",
        files={"file": ("乙区名单.csv", ledger.encode(), "text/csv")},
        headers=h,
    )
    assert imported.status_code == 201, imported.text
    staff = await committee_staff(client, town, mine, "staff-a")
    for path, secret in (
        ("/v1/grids", grid["id"]),
        ("/v1/assignments", on_grid["id"]),
        ("/v1/imports", imported.json()["id"]),
    ):
        listed = await client.get(path, headers=staff)
        assert listed.status_code == 200, listed.text
        assert secret not in listed.text and "乙区" not in listed.text, f"{path}: {listed.text}"
        assert secret in (await client.get(path, headers=h)).text, f"the operator sees {path}"
    one = await client.get(f"/v1/imports/{imported.json()['id']}", headers=staff)
    assert one.status_code == 404
