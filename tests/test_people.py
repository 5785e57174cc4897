"""Staff, volunteers, teams and assignments through the API: registration and filters, who
may manage whom, masked phones and the access log, bad input as problem details, and the
way assignments become what a signed-in leader or volunteer sees."""

from typing import Any

import httpx
from sqlalchemy import select

from cordon.platform import Platform
from services.registry.models import TeamKind, kernel
from shared.auth import Principal
from tests.conftest import Town
from tests.support import (
    Compound,
    account,
    committee_staff,
    make_building,
    make_compound,
    make_resident,
    post,
)


async def volunteer(
    client: httpx.AsyncClient, compound: Compound, headers: Any, **fields: Any
) -> dict[str, Any]:
    body = {"compound_id": compound.id, "name": "志愿者", "kind": "service", **fields}
    return dict(await post(client, "/v1/volunteers?reveal=true", body, headers))


async def names(client: httpx.AsyncClient, url: str, headers: Any) -> list[str]:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return sorted(item["name"] for item in response.json()["items"])


async def test_staff_are_placed_in_a_compound_a_committee_or_the_town(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    h = town.operator
    guard = await post(
        client,
        "/v1/staff",
        {"compound_id": compound.id, "name": "赵卫国", "title": "gate keeper"},
        h,
    )
    assert guard["committee_id"] == compound.committee_id and guard["town_id"] == str(town.id)
    secretary = await post(
        client,
        "/v1/staff",
        {"committee_id": compound.committee_id, "name": "钱书记", "title": "secretary"},
        h,
    )
    assert secretary["compound_id"] is None
    office = await post(
        client, "/v1/staff", {"town_id": str(town.id), "name": "孙主任", "title": "director"}, h
    )
    assert office["committee_id"] is None and office["compound_id"] is None

    assert await names(client, f"/v1/staff?compound_id={compound.id}", h) == ["赵卫国"]
    by_committee = f"/v1/staff?committee_id={compound.committee_id}"
    assert await names(client, by_committee, h) == ["赵卫国", "钱书记"]
    assert await names(client, "/v1/staff?name=主任", h) == ["孙主任"]

    renamed = await client.patch(
        f"/v1/staff/{guard['id']}", json={"title": "north gate keeper"}, headers=h
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "north gate keeper" and renamed.json()["name"] == "赵卫国"


async def test_volunteers_are_found_by_kind_and_skill_and_say_when_they_are_free(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    h = town.operator
    driver = await volunteer(
        client, compound, h, name="周师傅", skills=["Driving ", "first  aid"], kind="resource"
    )
    assert driver["skills"] == ["driving", "first aid"]
    await volunteer(client, compound, h, name="吴医生", kind="expert", skills=["医疗", "first"])
    await volunteer(client, compound, h, name="郑同学", skills=["errands"])

    assert await names(client, "/v1/volunteers?skill=first aid", h) == ["周师傅"]
    assert await names(client, "/v1/volunteers?skill=医疗", h) == ["吴医生"]
    assert await names(client, "/v1/volunteers?skill=first", h) == ["吴医生"]
    assert await names(client, "/v1/volunteers?kind=expert", h) == ["吴医生"]
    by_place = f"/v1/volunteers?compound_id={compound.id}&committee_id={compound.committee_id}"
    assert len(await names(client, by_place, h)) == 3

    changed = await client.patch(
        f"/v1/volunteers/{driver['id']}", json={"availability": "nights only"}, headers=h
    )
    assert changed.json()["availability"] == "nights only"
    assert changed.json()["skills"] == ["driving", "first aid"]

    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/v1/volunteers?{query}", headers=h)).json()
        seen += [v["id"] for v in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3


async def test_teams_gather_staff_and_volunteers_once_each(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    h = town.operator
    team = await post(
        client,
        "/v1/teams",
        {"compound_id": compound.id, "kind": "sampling", "name": "Sampling team 1"},
        h,
    )
    publicity = await post(
        client,
        "/v1/teams",
        {"committee_id": compound.committee_id, "kind": "publicity", "name": "Loudspeakers"},
        h,
    )
    assert publicity["compound_id"] is None
    nurse = await volunteer(client, compound, h, name="护士小林", kind="expert")
    leader = await post(
        client, "/v1/staff", {"compound_id": compound.id, "name": "钱组长", "title": "lead"}, h
    )
    members = f"/v1/teams/{team['id']}/members"
    await post(client, members, {"person_kind": "volunteer", "person_id": nurse["id"]}, h)
    await post(client, members, {"person_kind": "staff", "person_id": leader["id"]}, h)

    twice = await client.post(
        members, json={"person_kind": "volunteer", "person_id": nurse["id"]}, headers=h
    )
    assert twice.status_code == 409
    assert twice.json()["errors"][0]["field"] == "person_id"
    listed = (await client.get(members, headers=h)).json()
    assert sorted((m["person_kind"], m["name"]) for m in listed) == [
        ("staff", "钱组长"),
        ("volunteer", "护士小林"),
    ]
    assert await names(client, "/v1/teams?kind=sampling", h) == ["Sampling team 1"]
    by_committee = f"/v1/teams?committee_id={compound.committee_id}"
    assert await names(client, by_committee, h) == ["Loudspeakers", "Sampling team 1"]

    removed = await client.delete(f"{members}/{nurse['id']}", headers=h)
    assert removed.status_code == 204
    assert [m["name"] for m in (await client.get(members, headers=h)).json()] == ["钱组长"]
    again = await client.delete(f"{members}/{nurse['id']}", headers=h)
    assert again.status_code == 404


async def test_a_team_has_a_name_not_taken_where_it_belongs(
    client: httpx.AsyncClient, town: Town
) -> None:
    h = town.operator
    compound = await make_compound(client, town.id, h, code="P9")
    elsewhere = await make_compound(client, town.id, h, code="P10")

    async def team(name: str, **place: str) -> httpx.Response:
        body = {"kind": "errands", "name": name, **(place or {"compound_id": compound.id})}
        return await client.post("/v1/teams", json=body, headers=h)

    # A blank name is no name.
    for blank in ("", "   ", "\t \n"):
        refused = await team(blank)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["name"]
    made = await team("  Errands team ")
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "Errands team"
    # A second team of that name in the compound, however spaced: 409 naming the name.
    for again in ("Errands team", " Errands team\t"):
        taken = await team(again)
        assert taken.status_code == 409, taken.text
        assert [e["field"] for e in taken.json()["errors"]] == ["name"]
    # Another compound may have one; so may the committee itself, once.
    assert (await team("Errands team", compound_id=elsewhere.id)).status_code == 201
    committee = {"committee_id": compound.committee_id}
    assert (await team("Errands team", **committee)).status_code == 201
    twice = await team("Errands team", **committee)
    assert twice.status_code == 409, twice.text
    assert [e["field"] for e in twice.json()["errors"]] == ["name"]
    # Renamed: not to a blank name, nor to a name taken in its compound.
    care = await post(
        client, "/v1/teams", {"compound_id": compound.id, "kind": "care", "name": "Care"}, h
    )
    for name, status in (("  ", 422), ("Errands team", 409)):
        renamed = await client.patch(f"/v1/teams/{care['id']}", json={"name": name}, headers=h)
        assert renamed.status_code == status, renamed.text
        assert [e["field"] for e in renamed.json()["errors"]] == ["name"]
    assert await names(client, f"/v1/teams?compound_id={compound.id}", h) == [
        "Care",
        "Errands team",
    ]


async def test_phones_are_masked_unless_revealed_and_reveals_are_logged(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    h = town.operator
    staff = await post(
        client,
        "/v1/staff",
        {
            "compound_id": compound.id,
            "name": "王干部",
            "title": "grid worker",
            "phone": "139 1234 5678",
        },
        h,
    )
    assert staff["phone"] == "+86139****5678"
    revealed = await client.get(f"/v1/staff/{staff['id']}?reveal=true", headers=h)
    assert revealed.json()["phone"] == "+8613912345678"

    helper = await volunteer(client, compound, h, phone="13712345678")
    assert helper["phone"] == "+8613712345678"
    listed = await client.get("/v1/volunteers?reveal=true", headers=h)
    assert [v["phone"] for v in listed.json()["items"]] == ["+8613712345678"]
    await post(
        client,
        "/v1/assignments",
        {"person_kind": "volunteer", "person_id": helper["id"], "compound_id": compound.id},
        h,
    )
    as_volunteer = await account(
        client,
        town,
        username="helper",
        role="volunteer",
        person_kind="volunteer",
        person_id=helper["id"],
    )
    masked = await client.get(f"/v1/volunteers/{helper['id']}", headers=as_volunteer)
    assert masked.json()["phone"] == "+86137****5678"
    refused = await client.get(f"/v1/volunteers/{helper['id']}?reveal=true", headers=as_volunteer)
    assert refused.status_code == 403

    async with platform.runtime("registry").uow(Principal.system()) as uow:
        rows = (await uow.session.execute(select(kernel.access_log))).all()
    reads = sorted((r.resource, r.endpoint, [str(i) for i in r.record_ids]) for r in rows)
    assert reads == [
        ("staff", f"/v1/staff/{staff['id']}", [staff["id"]]),
        # the create answered with ?reveal=true, then the list
        ("volunteer", "/v1/volunteers", [helper["id"]]),
        ("volunteer", "/v1/volunteers", [helper["id"]]),
    ]


async def test_bad_input_names_the_field(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    other = await make_compound(client, town.id, town.operator, code="P2")
    h = town.operator
    helper = await volunteer(client, compound, h)
    person = {"person_kind": "volunteer", "person_id": helper["id"]}
    cases: list[tuple[str, dict[str, Any], int, list[str]]] = [
        (
            "/v1/staff",
            {"compound_id": compound.id, "name": "x", "phone": "12345", "title": "t"},
            422,
            ["phone"],
        ),
        ("/v1/staff", {"name": "x", "title": "t"}, 422, ["compound_id"]),
        (
            "/v1/staff",
            {
                "compound_id": compound.id,
                "committee_id": other.committee_id,
                "name": "x",
                "title": "t",
            },
            422,
            ["committee_id"],
        ),
        (
            "/v1/volunteers",
            {"compound_id": compound.id, "name": "x", "kind": "hero"},
            422,
            ["kind"],
        ),
        (
            "/v1/volunteers",
            {"compound_id": compound.building_id, "name": "x", "kind": "service"},
            404,
            ["compound_id"],
        ),
        ("/v1/teams", {"kind": "care", "name": "x"}, 422, ["compound_id"]),
        ("/v1/teams", {"kind": "cooking", "name": "x", "compound_id": compound.id}, 422, ["kind"]),
        ("/v1/assignments", {**person, "building_id": compound.id}, 404, ["building_id"]),
        ("/v1/assignments", {**person, "grid_id": compound.id}, 404, ["grid_id"]),
        (
            "/v1/assignments",
            {**person, "compound_id": compound.id, "building_id": compound.building_id},
            422,
            ["compound_id", "building_id"],
        ),
        ("/v1/assignments", person, 422, ["compound_id", "grid_id", "building_id"]),
        (
            "/v1/assignments",
            {**person, "person_kind": "staff", "compound_id": compound.id},
            404,
            ["person_id"],
        ),
        (
            "/v1/users",
            {
                "username": "ghost",
                "password": "ghost-password",
                "role": "volunteer",
                "town_id": str(town.id),
                "person_kind": "volunteer",
                "person_id": compound.id,
            },
            404,
            ["person_id"],
        ),
    ]
    for url, body, status, fields in cases:
        response = await client.post(url, json=body, headers=h)
        assert response.status_code == status, f"{url} {body}: {response.text}"
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == fields, response.text

    emptied = await client.patch(f"/v1/volunteers/{helper['id']}", json={"name": None}, headers=h)
    assert emptied.status_code == 422
    assert emptied.json()["errors"][0]["field"] == "name"
    assigned = {**person, "building_id": compound.building_id, "duty": "building leader"}
    await post(client, "/v1/assignments", assigned, h)
    twice = await client.post("/v1/assignments", json=assigned, headers=h)
    assert twice.status_code == 409 and twice.json()["errors"][0]["field"] == "person_id"
    everyone = await client.get("/v1/volunteers", headers=h)
    assert len(everyone.json()["items"]) == 1, "a refused create leaves nothing behind"


async def test_committee_staff_manage_their_own_committee_only(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await make_compound(client, town.id, town.operator, code="PA")
    theirs = await make_compound(client, town.id, town.operator, code="PB")
    town_grid = await post(
        client,
        "/v1/grids",
        {
            "town_id": str(town.id),
            "code": "G1",
            "name": "Grid 1",
            # Across two committees, so the town's (one committee's grid is that committee's).
            "building_ids": [mine.building_id, theirs.building_id],
        },
        town.operator,
    )
    secret = await post(
        client,
        "/v1/staff",
        {"committee_id": theirs.committee_id, "name": "乙委员", "title": "secretary"},
        town.operator,
    )
    await post(
        client,
        "/v1/teams",
        {"committee_id": theirs.committee_id, "kind": "counselling", "name": "乙心理队"},
        town.operator,
    )
    staff = await committee_staff(client, town, mine, "staff-a")

    own = await post(
        client,
        "/v1/staff",
        {"committee_id": mine.committee_id, "name": "甲委员", "title": "secretary"},
        staff,
    )
    helper = await volunteer(client, mine, staff, name="甲志愿者")
    person = {"person_kind": "volunteer", "person_id": helper["id"]}
    await post(client, "/v1/assignments", {**person, "building_id": mine.building_id}, staff)
    refused = [
        (
            "/v1/staff",
            {"committee_id": theirs.committee_id, "name": "x", "title": "t"},
            403,
            "committee_id",
        ),
        ("/v1/staff", {"compound_id": theirs.id, "name": "x", "title": "t"}, 404, "compound_id"),
        ("/v1/staff", {"town_id": str(town.id), "name": "x", "title": "t"}, 403, "town_id"),
        ("/v1/assignments", {**person, "building_id": theirs.building_id}, 404, "building_id"),
        ("/v1/assignments", {**person, "grid_id": town_grid["id"]}, 403, "grid_id"),
        (
            "/v1/assignments",
            {"person_kind": "staff", "person_id": secret["id"], "compound_id": mine.id},
            404,
            "person_id",
        ),
    ]
    for url, body, status, field in refused:
        response = await client.post(url, json=body, headers=staff)
        assert response.status_code == status, f"{url} {body}: {response.text}"
        assert response.json()["errors"][0]["field"] == field

    assert await names(client, "/v1/staff", staff) == ["甲委员"]
    assert await names(client, "/v1/teams", staff) == []
    assert (await client.get(f"/v1/staff/{secret['id']}", headers=staff)).status_code == 404
    edit = await client.patch(f"/v1/staff/{own['id']}", json={"title": "deputy"}, headers=staff)
    assert edit.status_code == 200
    assert await names(client, "/v1/staff", town.operator) == ["乙委员", "甲委员"]


async def test_an_assignment_is_what_a_volunteer_sees_after_signing_in(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    second = await make_building(client, compound, town.operator, code="2")
    third = await make_building(client, compound, town.operator, code="3")
    h = town.operator
    await make_resident(client, compound, h, name="一号楼居民")
    await make_resident(client, second, h, name="二号楼居民")
    await make_resident(client, third, h, name="三号楼居民")
    grid = await post(
        client,
        "/v1/grids",
        {
            "town_id": str(town.id),
            "compound_id": compound.id,
            "code": "G3",
            "name": "Grid 3",
            "building_ids": [third.building_id],
        },
        h,
    )
    leader = await volunteer(client, compound, h, name="楼组长")
    walker = await volunteer(client, compound, h, name="网格员")
    assignment = await post(
        client,
        "/v1/assignments",
        {
            "person_kind": "volunteer",
            "person_id": leader["id"],
            "building_id": second.building_id,
            "duty": "building leader",
        },
        h,
    )
    assert assignment["compound_id"] == compound.id and assignment["grid_id"] is None
    on_grid = await post(
        client,
        "/v1/assignments",
        {
            "person_kind": "volunteer",
            "person_id": walker["id"],
            "grid_id": grid["id"],
            "duty": "grid leader",
        },
        h,
    )
    assert on_grid["building_id"] is None and on_grid["compound_id"] == compound.id
    mine = f"/v1/assignments?person_id={leader['id']}"
    assert [a["id"] for a in (await client.get(mine, headers=h)).json()["items"]] == [
        assignment["id"]
    ]

    as_leader = await account(
        client,
        town,
        username="leader",
        role="building_leader",
        person_kind="volunteer",
        person_id=leader["id"],
    )
    as_walker = await account(
        client,
        town,
        username="walker",
        role="grid_leader",
        person_kind="volunteer",
        person_id=walker["id"],
    )
    me = (await client.get("/v1/auth/me", headers=as_leader)).json()
    assert me["scope"]["buildings"] == [second.building_id]
    assert await names(client, "/v1/residents", as_leader) == ["二号楼居民"]
    assert await names(client, "/v1/residents", as_walker) == ["三号楼居民"]
    assert await names(client, "/v1/volunteers", as_leader) == ["楼组长", "网格员"]

    own = await client.patch(
        f"/v1/volunteers/{leader['id']}", json={"availability": "after 18:00"}, headers=as_leader
    )
    assert own.status_code == 200 and own.json()["availability"] == "after 18:00"
    others = await client.patch(
        f"/v1/volunteers/{walker['id']}", json={"availability": "never"}, headers=as_leader
    )
    assert others.status_code == 403
    renamed = await client.patch(
        f"/v1/volunteers/{leader['id']}", json={"name": "boss"}, headers=as_leader
    )
    assert renamed.status_code == 403
    ended = await client.delete(f"/v1/assignments/{assignment['id']}", headers=as_leader)
    assert ended.status_code == 403

    ended = await client.delete(f"/v1/assignments/{assignment['id']}", headers=h)
    assert ended.status_code == 204
    again = await town.sign_in("leader", "people-password-1")
    assert await names(client, "/v1/residents", again) == []
    gone = await client.get(f"/v1/assignments/{assignment['id']}", headers=h)
    assert gone.status_code == 404


async def test_a_retried_create_makes_one_volunteer(client: httpx.AsyncClient, town: Town) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    body = {"compound_id": compound.id, "name": "冯阿姨", "kind": "service"}
    headers = {**town.operator, "Idempotency-Key": "phone-3:17"}
    first = await client.post("/v1/volunteers", json=body, headers=headers)
    retry = await client.post("/v1/volunteers", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers.get("idempotent-replayed") == "true"
    assert await names(client, "/v1/volunteers", town.operator) == ["冯阿姨"]


async def test_the_demo_town_has_staff_volunteers_teams_and_a_building_leader(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    from services.registry.demo import DEMO_PASSWORD, STAFF_PER_COMMITTEE, ensure_demo_town
    from tests.conftest import sign_in

    await ensure_demo_town(platform.runtime("registry"), size=400)
    operator = await sign_in(client, "operator", DEMO_PASSWORD)
    committees = (await client.get("/v1/committees", headers=operator)).json()
    for committee in committees:
        staff = await client.get(f"/v1/staff?committee_id={committee['id']}", headers=operator)
        assert len(staff.json()["items"]) == STAFF_PER_COMMITTEE
    teams = (await client.get("/v1/teams?limit=500", headers=operator)).json()["items"]
    assert {t["kind"] for t in teams} == {k.value for k in TeamKind}
    grid_leads = await client.get("/v1/assignments?person_kind=staff", headers=operator)
    assert grid_leads.json()["items"], "grids are led by staff"

    leader = await sign_in(client, "leader1", DEMO_PASSWORD)
    [building] = (await client.get("/v1/auth/me", headers=leader)).json()["scope"]["buildings"]
    residents = (await client.get("/v1/residents?limit=500", headers=leader)).json()["items"]
    assert residents and {r["building_id"] for r in residents} == {building}


async def test_a_committee_team_shows_a_building_leader_only_members_they_see(
    client: httpx.AsyncClient, town: Town
) -> None:
    """A committee's team gathers volunteers of two of its compounds: a building leader of
    one reads its members with only those they see (they read the other compound's
    volunteer's id, nameless); the committee's staff and the town office read it whole."""
    h = town.operator
    p1 = await make_compound(client, town.id, h, code="P1")
    p2 = await make_compound(client, town.id, h, code="P2", committee_id=p1.committee_id)
    team = await post(
        client,
        "/v1/teams",
        {"committee_id": p1.committee_id, "kind": "publicity", "name": "Loudspeakers"},
        h,
    )
    ours = await volunteer(client, p1, h, name="一区志愿者")
    theirs = await volunteer(client, p2, h, name="二区志愿者")
    members = f"/v1/teams/{team['id']}/members"
    for person in (ours, theirs):
        await post(client, members, {"person_kind": "volunteer", "person_id": person["id"]}, h)
    ref = {"person_kind": "volunteer", "person_id": ours["id"]}
    await post(client, "/v1/assignments", {**ref, "building_id": p1.building_id}, h)
    leader = await account(client, town, username="p1-leader", role="building_leader", **ref)
    staff = await committee_staff(client, town, p1, "k1-staff")
    both = sorted([ours["id"], theirs["id"]])
    for headers in (h, staff):
        listed = (await client.get(members, headers=headers)).json()
        assert sorted(m["person_id"] for m in listed) == both
    listed = (await client.get(members, headers=leader)).json()
    assert [(m["person_id"], m["name"]) for m in listed] == [(ours["id"], "一区志愿者")]
