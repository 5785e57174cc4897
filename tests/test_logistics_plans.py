"""Distribution plans: a demo-shaped compound of self-built houses planned from the logistics
directory, large households counted right, infants' formula added, pick lists printed, a
top-up for a household registered since, and committee staff kept to their compounds."""

import csv
import io
import uuid
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from cordon.platform import Platform
from services.logistics.models import DirectoryResident, DirectoryZone
from shared.auth import Principal
from shared.contracts.logistics import DistributionPlanned
from tests.conftest import Town
from tests.support import (
    Compound,
    committee_staff,
    eventually,
    listening,
    make_building,
    make_compound,
    make_resident,
    of_type,
    post,
)


def lines_of(package: str, formula: str) -> list[dict[str, Any]]:
    """A supply package per household (two from six people), a formula tin per infant."""
    return [
        {"item_id": package},
        {
            "item_id": formula,
            "per_household": 0,
            "large_household_size": None,
            "additions": [{"tag": "infant", "per_person": 1}],
            "only_tags": ["infant"],
        },
    ]


async def directory_count(platform: Platform, model: Any) -> int:
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def in_directory(platform: Platform, *, residents: int, zones: int = 0) -> None:
    async def arrived() -> bool:
        return (
            await directory_count(platform, DirectoryResident) == residents
            and await directory_count(platform, DirectoryZone) == zones
        )

    await eventually(arrived, what=f"{residents} residents, {zones} zones in logistics")


async def household(
    client: httpx.AsyncClient,
    compound: Compound,
    headers: Any,
    *,
    code: str,
    people: int,
    infants: int = 0,
    unit: int = 0,
) -> list[dict[str, Any]]:
    residents = []
    for n in range(people):
        tags = ["infant"] if n < infants else []
        born = "2022-01-10" if n < infants else "1975-03-02"
        residents.append(
            await make_resident(
                client,
                compound,
                headers,
                household=code,
                unit=unit,
                name=f"户{code}-{n}",
                tags=tags,
                born=born,
            )
        )
    return residents


class Village:
    """A compound of self-built houses (as the demo's rural compounds): house 1 holds four
    rented households of 6, 5, 2 (an infant) and 7 people (two infants); house 2 one of 3."""

    def __init__(self, compound: Compound, house2: Compound, households: dict[str, str]) -> None:
        self.compound = compound
        self.house2 = house2
        self.households = households
        # The town catalogue's items, once stocked.
        self.package = ""
        self.formula = ""

    @property
    def lines(self) -> list[dict[str, Any]]:
        return lines_of(self.package, self.formula)


async def receive(
    client: httpx.AsyncClient,
    headers: Any,
    holder_id: str,
    item_id: str,
    quantity: int,
    **more: Any,
) -> None:
    line = {"item_id": item_id, "quantity": str(quantity), "batch": f"B-{quantity}", **more}
    body = {"holder_id": holder_id, "source": "government", "lines": [line]}
    await post(client, "/v1/stock/receipts", body, headers)


async def stock_village(
    client: httpx.AsyncClient, town: Town, village: Village, *, packages: int = 100
) -> None:
    """The town's catalogue items, and the village's store stocked with them."""
    items = []
    for name, unit, perishable in (
        ("Supply package", "portion", False),
        ("Formula tin", "box", True),
    ):
        body = {"town_id": str(town.id), "name": name, "unit": unit, "perishable": perishable}
        items.append(str((await post(client, "/v1/items", body, town.operator))["id"]))
    village.package, village.formula = items
    await receive(client, town.operator, village.compound.id, village.package, packages)
    await receive(
        client, town.operator, village.compound.id, village.formula, 20, expires_on="2027-06-30"
    )


async def make_village(
    client: httpx.AsyncClient, town: Town, platform: Platform, *, code: str = "V1"
) -> Village:
    compound = await make_compound(client, town.id, town.operator, code=code)
    ids: dict[str, str] = {}
    for name, people, infants, unit in (
        ("A", 6, 0, 0),
        ("B", 5, 0, 0),
        ("C", 2, 1, 1),
        ("D", 7, 2, 1),
    ):
        members = await household(
            client, compound, town.operator, code=name, people=people, infants=infants, unit=unit
        )
        ids[name] = members[0]["household_id"]
    house2 = await make_building(client, compound, town.operator, code="2")
    members = await household(client, house2, town.operator, code="E", people=3)
    ids["E"] = members[0]["household_id"]
    return Village(compound, house2, ids)


async def plan(
    client: httpx.AsyncClient,
    town: Town,
    scope: dict[str, Any],
    headers: Any = None,
    *,
    lines: list[dict[str, Any]],
) -> httpx.Response:
    body = {"town_id": str(town.id), "name": "Supply packages", "scope": scope, "lines": lines}
    return await client.post("/v1/distribution-plans", json=body, headers=headers or town.operator)


async def reserved_at_village(
    client: httpx.AsyncClient, town: Town, village: Village
) -> dict[str, object]:
    """What the village's store holds reserved, by item name."""
    held = await client.get(
        "/v1/stock/balances", params={"holder_id": village.compound.id}, headers=town.operator
    )
    assert held.status_code == 200, held.text
    return {b["item"]: b["reserved"] for b in held.json()}


def quantities(sheet: str) -> dict[tuple[str, str], int]:
    rows = list(csv.DictReader(io.StringIO(sheet.lstrip("\ufeff"))))
    return {(r["household"], r["item"]): int(r["quantity"]) for r in rows}


@pytest.fixture
async def village(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> Village:
    made = await make_village(client, town, platform)
    await in_directory(platform, residents=23)
    await stock_village(client, town, made)
    return made


async def test_a_plan_counts_large_households_twice_and_adds_formula_per_infant(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    async with listening(platform, "logistics.distribution.planned") as events:
        response = await plan(
            client, town, {"kind": "compounds", "ids": [village.compound.id]}, lines=village.lines
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["households"] == 5
        assert created["compound_id"] == village.compound.id

        async def announced() -> bool:
            return bool(of_type(events, "logistics.distribution.planned"))

        await eventually(announced, what="logistics.distribution.planned")
    sheet = await client.get(
        f"/v1/distribution-plans/{created['id']}/pick-list", headers=town.operator
    )
    assert sheet.status_code == 200
    assert quantities(sheet.text) == {
        ("A", "Supply package"): 2,  # 6 people: two packages
        ("B", "Supply package"): 1,
        ("C", "Supply package"): 1,
        ("C", "Formula tin"): 1,
        ("D", "Supply package"): 2,
        ("D", "Formula tin"): 2,
        ("E", "Supply package"): 1,
    }
    [event] = of_type(events, "logistics.distribution.planned")
    payload = event.event()
    assert isinstance(payload, DistributionPlanned)
    assert payload.households == 5 and str(payload.compound_id) == village.compound.id
    assert {str(i.item_id): i.quantity for i in payload.items} == {
        village.package: 7,
        village.formula: 3,
    }


async def test_a_place_named_twice_in_a_scope_is_counted_once(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    twice = [village.compound.id, village.compound.id]
    response = await plan(client, town, {"kind": "compounds", "ids": twice}, lines=village.lines)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["households"] == 5
    assert created["scope"]["ids"] == [village.compound.id]
    sheet = await client.get(
        f"/v1/distribution-plans/{created['id']}/pick-list", headers=town.operator
    )
    assert sum(quantities(sheet.text).values()) == 7 + 3  # packages and formula tins, once
    buildings = [village.compound.building_id, village.house2.building_id]
    by_building = await plan(
        client, town, {"kind": "buildings", "ids": [*buildings, buildings[0]]}, lines=village.lines
    )
    assert by_building.status_code == 201, by_building.text
    assert by_building.json()["households"] == 5
    assert by_building.json()["scope"]["ids"] == buildings
    # What both plans hold at the store: each household's allocation once per plan.
    assert await reserved_at_village(client, town, village) == {
        "Supply package": 14,
        "Formula tin": 6,
    }


async def test_a_tag_scope_reaches_only_households_with_an_infant(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    scope = {"kind": "compounds", "ids": [village.compound.id], "tags": ["infant"]}
    response = await plan(client, town, scope, lines=village.lines)
    assert response.status_code == 201, response.text
    assert response.json()["households"] == 2
    nobody = await plan(client, town, {**scope, "tags": ["dialysis"]}, lines=village.lines)
    assert nobody.status_code == 422
    assert nobody.json()["errors"][0]["field"] == "scope"


async def test_pick_lists_per_building_as_csv_xlsx_and_a_printable_page_mark_sealed_units(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    sealed = await client.post(
        "/v1/zones",
        json={
            "building_id": village.compound.building_id,
            "unit_id": village.compound.unit_ids[1],
            "level": "sealed",
            "reason": "positive neighbour",
        },
        headers=town.operator,
    )
    assert sealed.status_code in (200, 201), sealed.text
    await in_directory(platform, residents=23, zones=1)
    created = (
        await plan(
            client, town, {"kind": "compounds", "ids": [village.compound.id]}, lines=village.lines
        )
    ).json()
    url = f"/v1/distribution-plans/{created['id']}/pick-list"

    house1 = await client.get(
        url, params={"building_id": village.compound.building_id}, headers=town.operator
    )
    rows = list(csv.DictReader(io.StringIO(house1.text.lstrip("\ufeff"))))
    assert {r["household"] for r in rows} == {"A", "B", "C", "D"}
    door = {r["household"] for r in rows if r["delivery"] == "door (sealed)"}
    assert door == {"C", "D"}  # unit 2 is sealed

    xlsx = await client.get(url, params={"format": "xlsx"}, headers=town.operator)
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    cells = list(sheet.iter_rows(values_only=True))
    assert cells[0][:3] == ("building", "unit", "household") and len(cells) == 1 + 7
    # People and quantities are numbers a building leader can sum; codes stay text.
    people, quantity = cells[0].index("people"), cells[0].index("quantity")
    assert all(isinstance(r[people], int) and r[quantity] > 0 for r in cells[1:])
    assert all(isinstance(r[2], str) for r in cells[1:])

    page = await client.get(url, params={"format": "html"}, headers=town.operator)
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count("<section>") == 2  # one printed page per house
    # C's package and formula tin, D's package and formula tins.
    assert page.text.count('<tr class="door">') == 4
    assert "door (sealed)" in page.text


async def test_a_pick_list_walks_buildings_in_their_numbers_order(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    tenth = await make_building(client, village.compound, town.operator, code="10")
    await household(client, tenth, town.operator, code="G", people=1)
    await in_directory(platform, residents=24)
    created = (
        await plan(
            client, town, {"kind": "compounds", "ids": [village.compound.id]}, lines=village.lines
        )
    ).json()
    url = f"/v1/distribution-plans/{created['id']}/pick-list"
    sheet = await client.get(url, headers=town.operator)
    rows = list(csv.DictReader(io.StringIO(sheet.text.lstrip("\ufeff"))))
    # Building 2 before building 10, as a building leader walks them.
    assert list(dict.fromkeys(r["building"] for r in rows)) == [
        village.compound.building_code,
        "2",
        "10",
    ]
    unknown = await client.get(
        url, params={"building_id": str(uuid.uuid4())}, headers=town.operator
    )
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["errors"][0]["field"] == "building_id"


async def test_a_top_up_plan_allocates_only_to_a_household_registered_since(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    original = (
        await plan(
            client, town, {"kind": "compounds", "ids": [village.compound.id]}, lines=village.lines
        )
    ).json()
    await household(client, village.house2, town.operator, code="F", people=6, infants=1)
    await in_directory(platform, residents=29)
    top_up = await client.post(
        f"/v1/distribution-plans/{original['id']}/top-ups", json={}, headers=town.operator
    )
    assert top_up.status_code == 201, top_up.text
    assert top_up.json()["households"] == 1 and top_up.json()["top_up_of"] == original["id"]
    sheet = await client.get(
        f"/v1/distribution-plans/{top_up.json()['id']}/pick-list", headers=town.operator
    )
    assert quantities(sheet.text) == {("F", "Supply package"): 2, ("F", "Formula tin"): 1}
    again = await client.post(
        f"/v1/distribution-plans/{original['id']}/top-ups", json={}, headers=town.operator
    )
    assert again.status_code == 201 and again.json()["households"] == 0


async def test_committee_staff_plan_their_own_compounds_and_nobody_else_s(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    other = await make_compound(client, town.id, town.operator, code="V2")
    await make_resident(client, other, town.operator, household="X")
    await in_directory(platform, residents=24)
    staff = await committee_staff(client, town, village.compound, "staff-v1")

    own = await plan(
        client,
        town,
        {"kind": "compounds", "ids": [village.compound.id]},
        staff,
        lines=village.lines,
    )
    assert own.status_code == 201, own.text
    outside = await plan(
        client, town, {"kind": "compounds", "ids": [other.id]}, staff, lines=village.lines
    )
    assert outside.status_code == 404
    assert outside.json()["errors"][0]["field"] == "scope.ids.0"
    town_wide = await plan(client, town, {"kind": "town"}, staff, lines=village.lines)
    assert town_wide.status_code == 403
    listed = await client.get("/v1/distribution-plans", headers=staff)
    assert [p["id"] for p in listed.json()["items"]] == [own.json()["id"]]


async def test_a_town_plan_over_two_committees_shows_each_committee_only_its_own(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    """The town office plans for compounds of two committees at once: each committee's staff
    read the plan with their own compound in its scope and their own households counted (they
    read the other committee's compound id and the whole count), and only their own on its
    pick list and undelivered list; the town office reads it whole."""
    other = await make_compound(client, town.id, town.operator, code="V2")
    await make_resident(client, other, town.operator, household="X")
    await in_directory(platform, residents=24)
    await receive(client, town.operator, other.id, village.package, 10)
    scope = {"kind": "compounds", "ids": [village.compound.id, other.id]}
    made = await plan(client, town, scope, lines=[{"item_id": village.package}])
    assert made.status_code == 201, made.text
    url = f"/v1/distribution-plans/{made.json()['id']}"
    whole = (await client.get(url, headers=town.operator)).json()
    assert (whole["scope"]["ids"], whole["households"]) == (scope["ids"], 6)

    for compound, households in ((village.compound, {"A", "B", "C", "D", "E"}), (other, {"X"})):
        staff = await committee_staff(client, town, compound, f"staff-{compound.code}")
        shown = (await client.get(url, headers=staff)).json()
        assert (shown["scope"]["ids"], shown["households"]) == ([compound.id], len(households))
        listed = (await client.get("/v1/distribution-plans", headers=staff)).json()["items"]
        assert [(p["scope"]["ids"], p["households"]) for p in listed] == [
            ([compound.id], len(households))
        ]
        sheet = await client.get(f"{url}/pick-list", headers=staff)
        assert {household for household, _ in quantities(sheet.text)} == households
        pending = (await client.get(f"{url}/undelivered", headers=staff)).json()
        assert {h["household_code"] for b in pending for h in b["households"]} == households


async def test_committee_staff_plan_for_the_sealed_households_of_their_own_compounds(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    """Supplies for everyone sealed in, from a committee: a zone level narrowed to the
    committee's compounds reaches their sealed households only; another committee's
    compound cannot be named, and the whole town's zone level stays the town's."""
    other = await make_compound(client, town.id, town.operator, code="V2")
    await make_resident(client, other, town.operator, household="X")
    for compound, unit in ((village.compound, village.compound.unit_ids[1]), (other, None)):
        zone = {"building_id": compound.building_id, "level": "sealed", "reason": "cases"}
        await post(client, "/v1/zones", {**zone, "unit_id": unit}, town.operator)
    await in_directory(platform, residents=24, zones=2)
    staff = await committee_staff(client, town, village.compound, "staff-v1")

    sealed = {"kind": "zone_level", "zone_level": "sealed", "ids": [village.compound.id]}
    own = await plan(client, town, sealed, staff, lines=village.lines)
    assert own.status_code == 201, own.text
    sheet = await client.get(f"/v1/distribution-plans/{own.json()['id']}/pick-list", headers=staff)
    assert {household for household, _ in quantities(sheet.text)} == {"C", "D"}

    outside = await plan(client, town, {**sealed, "ids": [other.id]}, staff, lines=village.lines)
    assert outside.status_code == 404 and outside.json()["errors"][0]["field"] == "scope.ids.0"
    town_wide = await plan(client, town, {**sealed, "ids": []}, staff, lines=village.lines)
    assert town_wide.status_code == 403


async def test_a_plan_short_of_stock_is_refused_saying_by_how_much_and_where(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    village = await make_village(client, town, platform, code="V9")
    await in_directory(platform, residents=23)
    # 7 packages needed (two 6+ households), 5 in the store.
    await stock_village(client, town, village, packages=5)
    scope = {"kind": "compounds", "ids": [village.compound.id]}
    refused = await plan(client, town, scope, lines=village.lines)
    assert refused.status_code == 409, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "lines.0.item_id"
    assert error["message"] == "short by 2 portions of Supply package at compound V9"
    assert error["short"] == 2
    listed = await client.get("/v1/distribution-plans", headers=town.operator)
    assert listed.json()["items"] == []  # nothing of the plan was written

    await receive(client, town.operator, village.compound.id, village.package, 2)
    accepted = await plan(client, town, scope, lines=village.lines)
    assert accepted.status_code == 201, accepted.text
    balances = await client.get(
        "/v1/stock/balances",
        params={"holder_id": village.compound.id, "item_id": village.package},
        headers=town.operator,
    )
    [balance] = balances.json()
    assert (balance["on_hand"], balance["reserved"], balance["available"]) == (7, 7, 0)


async def test_a_kit_is_reserved_as_its_items_and_a_short_one_named_on_its_line(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    h = town.operator
    rice, oil = [
        str((await post(client, "/v1/items", {"town_id": str(town.id), **item}, h))["id"])
        for item in ({"name": "rice", "unit": "kg"}, {"name": "oil", "unit": "piece"})
    ]
    kit_body = {
        "town_id": str(town.id),
        "name": "rice and oil",
        "lines": [{"item_id": rice, "quantity": "5"}, {"item_id": oil, "quantity": 1}],
    }
    kit = str((await post(client, "/v1/kits", kit_body, h))["id"])
    await receive(client, h, village.compound.id, rice, 40)
    await receive(client, h, village.compound.id, oil, 5)
    scope = {"kind": "compounds", "ids": [village.compound.id]}
    # Seven kits (two 6+ households): 35 kg of rice there is, 7 pieces of oil there are not.
    refused = await plan(client, town, scope, lines=[{"item_id": kit}])
    assert refused.status_code == 409, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "lines.0.item_id"
    assert error["message"] == "short by 2 pieces of oil at compound V1"

    await receive(client, h, village.compound.id, oil, 2)
    accepted = await plan(client, town, scope, lines=[{"item_id": kit}])
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["lines"][0]["label"] == "rice and oil"
    reserved = await reserved_at_village(client, town, village)
    assert (reserved["rice"], reserved["oil"]) == (35, 7)


async def test_a_per_person_line_gives_one_tin_per_infant_however_large_the_household(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    # The OpenAPI's own formula line, without large_household_size: household D (7 people,
    # two infants) gets two tins, not two more as a large household's portions.
    formula = {
        "item_id": village.formula,
        "per_household": 0,
        "additions": [{"tag": "infant", "per_person": 1}],
        "only_tags": ["infant"],
    }
    scope = {"kind": "compounds", "ids": [village.compound.id]}
    response = await plan(client, town, scope, lines=[formula])
    assert response.status_code == 201, response.text
    assert response.json()["lines"][0]["large_household_size"] is None
    sheet = await client.get(
        f"/v1/distribution-plans/{response.json()['id']}/pick-list", headers=town.operator
    )
    assert quantities(sheet.text) == {("C", "Formula tin"): 1, ("D", "Formula tin"): 2}
    # Large-household portions set on the line itself still count.
    explicit = {**formula, "large_household_size": 6, "large_household_portions": 1}
    again = await plan(client, town, scope, lines=[explicit])
    assert again.status_code == 201, again.text
    sheet = await client.get(
        f"/v1/distribution-plans/{again.json()['id']}/pick-list", headers=town.operator
    )
    assert quantities(sheet.text) == {("C", "Formula tin"): 1, ("D", "Formula tin"): 3}


async def test_a_scope_s_ids_or_zone_level_that_its_kind_would_ignore_are_refused(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """An operator who sends the town's kind with a compound's id meant that compound, not the
    whole town: a town scope with `ids`, or a zone level on a scope of places, is refused
    with 422 naming the field rather than planned over more (or other) households than were
    named."""
    lines = village.lines
    for scope, field in (
        ({"kind": "town", "ids": [village.compound.id]}, "scope.ids"),
        (
            {"kind": "compounds", "ids": [village.compound.id], "zone_level": "sealed"},
            "scope.zone_level",
        ),
        ({"kind": "town", "zone_level": "sealed"}, "scope.zone_level"),
    ):
        refused = await plan(client, town, scope, lines=lines)
        assert refused.status_code == 422, f"{scope}: {refused.text}"
        assert refused.json()["errors"][0]["field"] == field, refused.text
    listed = await client.get("/v1/distribution-plans", headers=town.operator)
    assert listed.json()["items"] == []
    assert await reserved_at_village(client, town, village) == {
        "Supply package": 0,
        "Formula tin": 0,
    }


async def test_a_large_household_never_gets_fewer_than_a_small_one(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """Six people count as two households: with three bottles per household and the rule's
    defaults, a household of six gets six, not the default's two (fewer than a couple got).
    A line that states fewer for a large household than for any other is a 422 naming
    `lines.N.large_household_portions`."""
    scope = {"kind": "compounds", "ids": [village.compound.id]}
    by_three = [{"item_id": village.package, "per_household": 3}]
    three = await plan(client, town, scope, lines=by_three)
    assert three.status_code == 201, three.text
    assert three.json()["lines"][0]["large_household_portions"] == 6
    sheet = await client.get(
        f"/v1/distribution-plans/{three.json()['id']}/pick-list", headers=town.operator
    )
    assert quantities(sheet.text) == {
        ("A", "Supply package"): 6,  # 6 people
        ("B", "Supply package"): 3,
        ("C", "Supply package"): 3,
        ("D", "Supply package"): 6,  # 7 people
        ("E", "Supply package"): 3,
    }
    fewer = [{"item_id": village.package, "per_household": 3, "large_household_portions": 2}]
    refused = await plan(client, town, scope, lines=fewer)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "lines.0.large_household_portions"
    # The field's own rule is unchanged: one package, two from six people.
    one = await plan(client, town, scope, lines=[{"item_id": village.package}])
    assert one.status_code == 201, one.text
    assert one.json()["lines"][0]["large_household_portions"] == 2
