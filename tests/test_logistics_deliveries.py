"""Deliveries to households from a deliverer's phone: confirmations resent change nothing, a
whole unit at once, what is left undelivered per building, and door delivery following a
sealed unit and a confirmed case."""

import csv
import io
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cordon.platform import Platform
from services.logistics.models import directory
from shared.auth import Principal
from shared.contracts.testing import CaseConfirmed
from shared.ids import new_id
from tests.conftest import Town
from tests.support import committee_staff, eventually, listening, of_type, post
from tests.test_logistics_plans import (
    Village,
    household,
    in_directory,
    make_village,
    plan,
    receive,
    stock_village,
)


def now() -> str:
    """A confirmation's time: now, after its plan was made (one dated before is refused)."""
    return datetime.now(UTC).isoformat()


@pytest.fixture
async def village(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> Village:
    made = await make_village(client, town, platform)
    await in_directory(platform, residents=23)
    await stock_village(client, town, made)
    return made


async def planned(client: httpx.AsyncClient, town: Town, village: Village) -> str:
    response = await plan(
        client, town, {"kind": "compounds", "ids": [village.compound.id]}, lines=village.lines
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def undelivered(client: httpx.AsyncClient, town: Town, plan_id: str) -> dict[str, Any]:
    """Households not delivered yet, by household code, over every building."""
    response = await client.get(
        f"/v1/distribution-plans/{plan_id}/undelivered", headers=town.operator
    )
    assert response.status_code == 200, response.text
    return {h["household_code"]: h for b in response.json() for h in b["households"]}


async def test_a_confirmation_sent_twice_changes_once_and_a_unit_is_confirmed_at_once(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    plan_id = await planned(client, town, village)
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    h = village.households
    body = {
        "deliveries": [
            {
                "client_ref": "p7-0001",
                "household_id": h["A"],
                "outcome": "delivered",
                "received_by": "户A-0",
                "code": "4821",
                "at": now(),
            },
            {
                "client_ref": "p7-0002",
                "household_id": h["B"],
                "outcome": "not_delivered",
                "reason": "absent",
                "at": now(),
            },
        ]
    }
    async with listening(platform, "logistics.deliveries.recorded") as events:
        first = await client.post(url, json=body, headers=town.operator)
        assert first.status_code == 200, first.text
        assert (first.json()["changed"], first.json()["unchanged"]) == (2, 0)
        # The phone never saw the answer and sends it all again.
        again = await client.post(url, json=body, headers=town.operator)
        assert (again.json()["changed"], again.json()["unchanged"]) == (2 - 2, 2)

        unit = f"/v1/distribution-plans/{plan_id}/units/{village.compound.unit_ids[1]}/deliveries"
        whole = {
            "client_ref": "p7-unit-2",
            "outcome": "delivered",
            "received_by": "楼组长",
            "at": now(),
        }
        done = await client.post(unit, json=whole, headers=town.operator)
        assert done.status_code == 200, done.text
        assert done.json()["changed"] == 2
        assert {s["status"] for s in done.json()["households"]} == {"delivered"}
        resent = await client.post(unit, json=whole, headers=town.operator)
        assert (resent.json()["changed"], resent.json()["unchanged"]) == (0, 2)

        async def published() -> bool:
            return len(of_type(events, "logistics.deliveries.recorded")) >= 2

        await eventually(published, what="two logistics.deliveries.recorded")
    recorded = of_type(events, "logistics.deliveries.recorded")
    assert [len(e.payload["deliveries"]) for e in recorded] == [2, 2]

    left = await undelivered(client, town, plan_id)
    assert set(left) == {"B", "E"}
    assert (left["B"]["status"], left["B"]["reason"]) == ("undelivered", "absent")
    assert left["E"]["status"] == "pending"

    late = {**body["deliveries"][0], "client_ref": "p7-0009"}
    refused = await client.post(url, json={"deliveries": [late]}, headers=town.operator)
    assert refused.status_code == 422
    assert "delivered already" in refused.json()["errors"][0]["message"]


async def _zone(client: httpx.AsyncClient, town: Town, village: Village, level: str | None) -> None:
    body = {
        "building_id": village.compound.building_id,
        "unit_id": village.compound.unit_ids[1],
        "level": level,
        "reason": "positive neighbour",
    }
    response = await client.post("/v1/zones", json=body, headers=town.operator)
    assert response.status_code in (200, 201), response.text


async def door(
    client: httpx.AsyncClient, town: Town, plan_id: str, wanted: Callable[[dict[str, Any]], bool]
) -> None:
    async def matches() -> bool:
        return wanted(
            {c: h["door_reason"] for c, h in (await undelivered(client, town, plan_id)).items()}
        )

    await eventually(matches, what="door deliveries as expected")


async def test_a_sealed_unit_switches_to_door_delivery_and_back_when_lifted(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    plan_id = await planned(client, town, village)
    assert not any(h["door_delivery"] for h in (await undelivered(client, town, plan_id)).values())
    await _zone(client, town, village, "sealed")
    await door(client, town, plan_id, lambda d: d["C"] == d["D"] == "sealed" and d["A"] is None)
    await _zone(client, town, village, None)
    await door(client, town, plan_id, lambda d: d["C"] is None and d["D"] is None)

    # A deliverer who finds a unit sealed before the registry knows it.
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    found = {
        "client_ref": "p8-0001",
        "household_id": village.households["E"],
        "outcome": "not_delivered",
        "reason": "unit_sealed",
        "at": now(),
    }
    response = await client.post(url, json={"deliveries": [found]}, headers=town.operator)
    assert response.status_code == 200, response.text
    [state] = response.json()["households"]
    assert (state["status"], state["door_delivery"], state["door_reason"]) == (
        "pending",
        True,
        "unit_sealed",
    )


async def test_door_delivery_follows_each_units_own_zone_over_its_buildings(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    plan_id = await planned(client, town, village)
    unit1, unit2 = village.compound.unit_ids[:2]
    building_id = village.compound.building_id

    async def zone(unit_id: str | None, level: str | None, **more: object) -> None:
        body = {"building_id": building_id, "unit_id": unit_id, "level": level, "reason": "night"}
        response = await client.post("/v1/zones", json={**body, **more}, headers=town.operator)
        assert response.status_code in (200, 201), response.text

    await zone(unit2, "sealed")
    await zone(None, "sealed")
    await door(client, town, plan_id, lambda d: d["A"] == d["B"] == d["C"] == d["D"] == "sealed")
    # Unit 1 released from the building's seal by an explicit downgrade: its own precaution
    # zone wins over the building's (the registry counts it so); unit 2 keeps its own seal.
    await zone(unit1, "precaution", downgrade=True)
    await door(
        client,
        town,
        plan_id,
        lambda d: d["C"] == d["D"] == "sealed" and d["A"] is None and d["B"] is None,
    )
    # The building's seal lifted: unit 2 stays sealed on its own.
    await zone(None, None)

    async def lifted() -> bool:
        zones = directory.models.Zone
        async with platform.runtime("logistics").uow(Principal.system()) as uow:
            level = await uow.session.scalar(
                select(zones.level).where(
                    zones.building_id == uuid.UUID(building_id), zones.unit_id.is_(None)
                )
            )
        return level is None

    await eventually(lifted, what="the building's seal lifted in logistics")
    assert {c: h["door_reason"] for c, h in (await undelivered(client, town, plan_id)).items()} == {
        "A": None,
        "B": None,
        "C": "sealed",
        "D": "sealed",
        "E": None,
    }


async def test_a_confirmed_case_sends_its_household_s_deliveries_to_the_door(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    plan_id = await planned(client, town, village)
    listed = await client.get(
        f"/v1/households?building_id={village.compound.building_id}", headers=town.operator
    )
    b = next(h for h in listed.json()["items"] if h["code"] == "B")
    residents = await client.get(f"/v1/residents?household_id={b['id']}", headers=town.operator)
    resident = residents.json()["items"][0]
    case = CaseConfirmed(
        case_id=new_id(),
        resident_id=resident["id"],
        household_id=b["id"],
        town_id=town.id,
        compound_id=village.compound.id,
        building_id=village.compound.building_id,
        unit_id=village.compound.unit_ids[0],
        round_id=None,
        tube_code=None,
        source="antigen_confirmed",
        confirmed_at=datetime.now(UTC),
        contacts=[],
    )
    # Published by the testing service as its case confirmation does (outbox, relay, bus).
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        uow.emit(case, compound_id=case.compound_id)
        await uow.commit()
    await door(client, town, plan_id, lambda d: d["B"] == "case" and d["A"] in (None, "sealed"))
    later = await planned(client, town, village)
    assert (await undelivered(client, town, later))["B"]["door_reason"] == "case"


async def shelf(
    client: httpx.AsyncClient, town: Town, village: Village
) -> dict[str, tuple[Any, Any, Any]]:
    """The village store's (on hand, reserved, available) per item."""
    response = await client.get(
        "/v1/stock/balances", params={"holder_id": village.compound.id}, headers=town.operator
    )
    assert response.status_code == 200, response.text
    return {b["item"]: (b["on_hand"], b["reserved"], b["available"]) for b in response.json()}


async def issues(client: httpx.AsyncClient, town: Town, village: Village) -> list[dict[str, Any]]:
    response = await client.get(
        "/v1/stock/entries",
        params={"holder_id": village.compound.id, "kind": "issue"},
        headers=town.operator,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_delivered_goods_leave_the_shelf_once_and_the_undelivered_stay_reserved(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    # Packages: A 2 (six people), B 1, C 1, D 2 (seven), E 1; formula: C 1, D 2.
    plan_id = await planned(client, town, village)
    assert await shelf(client, town, village) == {
        "Supply package": (100, 7, 93),
        "Formula tin": (20, 3, 17),
    }
    h = village.households
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    body = {
        "deliveries": [
            {
                "client_ref": "p9-0001",
                "household_id": h["A"],
                "outcome": "delivered",
                "received_by": "户A-0",
                "at": now(),
            },
            {
                "client_ref": "p9-0002",
                "household_id": h["B"],
                "outcome": "not_delivered",
                "reason": "absent",
                "at": now(),
            },
        ]
    }
    for _ in range(2):  # the phone resends: nothing more leaves the shelf
        response = await client.post(url, json=body, headers=town.operator)
        assert response.status_code == 200, response.text
    assert await shelf(client, town, village) == {
        "Supply package": (98, 5, 93),
        "Formula tin": (20, 3, 17),
    }
    unit = f"/v1/distribution-plans/{plan_id}/units/{village.compound.unit_ids[1]}/deliveries"
    whole = {
        "client_ref": "p9-unit-2",
        "outcome": "delivered",
        "received_by": "楼组长",
        "at": now(),
    }
    for _ in range(2):
        response = await client.post(unit, json=whole, headers=town.operator)
        assert response.status_code == 200, response.text
    # B (absent) and E (not visited) keep their packages reserved.
    assert await shelf(client, town, village) == {
        "Supply package": (95, 2, 93),
        "Formula tin": (17, 0, 17),
    }
    card = await issues(client, town, village)
    by_household = {
        (e["to_household_id"], e["item_id"]): e["quantity"]
        for e in card
        if e["reference_kind"] == "plan" and e["reference_id"] == plan_id
    }
    assert by_household == {
        (h["A"], village.package): -2,
        (h["C"], village.package): -1,
        (h["C"], village.formula): -1,
        (h["D"], village.package): -2,
        (h["D"], village.formula): -2,
    }
    assert {e["to_building_id"] for e in card} == {village.compound.building_id}


async def test_a_delivered_kit_leaves_the_shelf_as_its_items(
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
        "lines": [{"item_id": rice, "quantity": "2.5"}, {"item_id": oil, "quantity": 1}],
    }
    kit = str((await post(client, "/v1/kits", kit_body, h))["id"])
    await receive(client, h, village.compound.id, rice, 40)
    await receive(client, h, village.compound.id, oil, 10)
    scope = {"kind": "compounds", "ids": [village.compound.id]}
    made = await plan(client, town, scope, lines=[{"item_id": kit}])
    assert made.status_code == 201, made.text
    url = f"/v1/distribution-plans/{made.json()['id']}/deliveries"
    delivered = {
        "client_ref": "k-1",
        "household_id": village.households["A"],
        "outcome": "delivered",
        "received_by": "户A-0",
        "at": now(),
    }
    response = await client.post(url, json={"deliveries": [delivered]}, headers=h)
    assert response.status_code == 200, response.text
    shelf_now = await shelf(client, town, village)
    # Seven kits reserved (17.5 kg, 7 pieces); A's two kits (5 kg, 2 pieces) left.
    assert shelf_now["rice"] == (35, 12.5, 22.5)
    assert shelf_now["oil"] == (8, 5, 3)


async def test_a_cancelled_plan_gives_back_what_it_holds_and_refuses_deliveries(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    # A town-wide plan: the town office makes it, so only the town office may cancel it.
    made = await plan(client, town, {"kind": "town"}, lines=village.lines)
    assert made.status_code == 201, made.text
    plan_id = made.json()["id"]
    h = village.households
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    to_a = {
        "client_ref": "c-1",
        "household_id": h["A"],
        "outcome": "delivered",
        "received_by": "户A-0",
        "at": now(),
    }
    response = await client.post(url, json={"deliveries": [to_a]}, headers=town.operator)
    assert response.status_code == 200, response.text

    cancel = f"/v1/distribution-plans/{plan_id}/cancel"
    staff = await committee_staff(client, town, village.compound, "staff-cancel")
    refused = await client.post(cancel, json={"reason": "duplicate plan"}, headers=staff)
    assert refused.status_code == 403, refused.text
    unexplained = await client.post(cancel, json={"reason": ""}, headers=town.operator)
    assert unexplained.status_code == 422
    assert unexplained.json()["errors"][0]["field"] == "reason"

    async with listening(platform, "logistics.distribution.cancelled") as events:
        done = await client.post(cancel, json={"reason": "duplicate plan"}, headers=town.operator)
        assert done.status_code == 200, done.text
        assert done.json()["cancel_reason"] == "duplicate plan"
        assert done.json()["cancelled_by"] and done.json()["cancelled_at"]

        async def published() -> bool:
            return bool(of_type(events, "logistics.distribution.cancelled"))

        await eventually(published, what="logistics.distribution.cancelled")
    [event] = of_type(events, "logistics.distribution.cancelled")
    assert event.payload["reason"] == "duplicate plan"
    assert event.payload["households"] == 4  # all but A
    assert {i["item_id"]: i["quantity"] for i in event.payload["items"]} == {
        village.package: 5,
        village.formula: 3,
    }
    # A's two packages stay issued; everything else is back on the shelf.
    assert await shelf(client, town, village) == {
        "Supply package": (98, 0, 98),
        "Formula tin": (20, 0, 20),
    }
    assert [e["to_household_id"] for e in await issues(client, town, village)] == [h["A"]]

    to_b = {**to_a, "client_ref": "c-2", "household_id": h["B"]}
    late = await client.post(url, json={"deliveries": [to_b]}, headers=town.operator)
    assert late.status_code == 409
    assert "cancelled" in late.json()["detail"] and "duplicate plan" in late.json()["detail"]
    unit = f"/v1/distribution-plans/{plan_id}/units/{village.compound.unit_ids[1]}/deliveries"
    whole = {"client_ref": "c-unit", "outcome": "delivered", "received_by": "楼组长", "at": now()}
    assert (await client.post(unit, json=whole, headers=town.operator)).status_code == 409
    again = await client.post(cancel, json={"reason": "again"}, headers=town.operator)
    assert again.status_code == 409
    top_up = await client.post(
        f"/v1/distribution-plans/{plan_id}/top-ups", json={}, headers=town.operator
    )
    assert top_up.status_code == 409


def _to(household: str, h: dict[str, str], ref: str, **outcome: Any) -> dict[str, Any]:
    outcome = outcome or {"outcome": "delivered", "received_by": f"户{household}-0"}
    return {"client_ref": ref, "household_id": h[household], "at": now(), **outcome}


async def test_a_cancelled_plan_shows_nobody_as_still_to_deliver_and_refuses_every_new_confirmation(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    plan_id = await planned(client, town, village)
    h = village.households
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    absent = {"outcome": "not_delivered", "reason": "absent"}
    body = {"deliveries": [_to("A", h, "x-1"), _to("B", h, "x-2", **absent)]}
    assert (await client.post(url, json=body, headers=town.operator)).status_code == 200
    unit = f"/v1/distribution-plans/{plan_id}/units/{village.compound.unit_ids[1]}/deliveries"
    whole = {"client_ref": "x-unit", "outcome": "delivered", "received_by": "楼组长", "at": now()}
    assert (await client.post(unit, json=whole, headers=town.operator)).status_code == 200
    read = f"/v1/distribution-plans/{plan_id}"
    assert (await client.get(read, headers=town.operator)).json()["status"] == "planned"

    cancel = f"/v1/distribution-plans/{plan_id}/cancel"
    done = await client.post(cancel, json={"reason": "wrong week"}, headers=town.operator)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"
    listed = (await client.get("/v1/distribution-plans", headers=town.operator)).json()["items"]
    assert {p["id"]: p["status"] for p in listed} == {plan_id: "cancelled"}

    # Nobody is still to deliver: the households not delivered say the plan was cancelled
    # (B keeps why its delivery failed), those delivered stay delivered.
    left = await undelivered(client, town, plan_id)
    assert {code: hh["status"] for code, hh in left.items()} == {"B": "cancelled", "E": "cancelled"}
    assert left["B"]["reason"] == "absent"
    sheet = await client.get(f"{read}/pick-list?format=csv", headers=town.operator)
    rows = list(csv.DictReader(io.StringIO(sheet.text.lstrip("\ufeff"))))
    assert {r["household"]: r["status"] for r in rows} == {
        **{code: "delivered" for code in "ACD"},
        **{code: "cancelled" for code in "BE"},
    }
    printed = await client.get(f"{read}/pick-list?format=html", headers=town.operator)
    assert "Cancelled" in printed.text and "wrong week" in printed.text

    # Every new confirmation is a 409 naming why, whatever else is wrong with it; a resend
    # of what was recorded before still answers as it did.
    for late in (
        _to("E", h, "x-3"),
        _to("A", h, "x-4"),  # delivered already
        {**_to("C", h, "x-5"), "household_id": str(uuid.uuid4())},  # not in the plan
    ):
        refused = await client.post(url, json={"deliveries": [late]}, headers=town.operator)
        assert refused.status_code == 409, refused.text
        assert "cancelled" in refused.json()["detail"] and "wrong week" in refused.json()["detail"]
    resent = await client.post(url, json=body, headers=town.operator)
    assert resent.status_code == 200, resent.text
    assert (resent.json()["changed"], resent.json()["unchanged"]) == (0, 2)
    # A unit whose every household was delivered: still a 409, not "nothing to do".
    again = {**whole, "client_ref": "x-unit-2"}
    assert (await client.post(unit, json=again, headers=town.operator)).status_code == 409
    assert (await client.post(unit, json=whole, headers=town.operator)).status_code == 200

    # What the plan held is back on the shelf: what A, C and D received left it, nothing is
    # held any more.
    assert await shelf(client, town, village) == {
        "Supply package": (95, 0, 95),
        "Formula tin": (17, 0, 17),
    }
    held = await client.get(
        "/v1/stock/reservations", params={"reference_id": plan_id}, headers=town.operator
    )
    assert held.status_code == 200, held.text
    by_item: dict[str, list[float]] = {}
    for r in held.json()["items"]:
        totals = by_item.setdefault(r["item_id"], [0, 0, 0])
        for n, key in enumerate(("held", "issued", "released")):
            totals[n] += r[key]
    assert by_item == {village.package: [0, 5, 2], village.formula: [0, 3, 0]}


async def test_cancelling_a_plan_delivered_in_full_is_announced_too(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    plan_id = await planned(client, town, village)
    h = village.households
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    body = {"deliveries": [_to(code, h, f"all-{code}") for code in "ABCDE"]}
    assert (await client.post(url, json=body, headers=town.operator)).status_code == 200
    cancel = f"/v1/distribution-plans/{plan_id}/cancel"
    async with listening(platform, "logistics.distribution.cancelled") as events:
        done = await client.post(cancel, json={"reason": "closed out"}, headers=town.operator)
        assert done.status_code == 200, done.text

        async def published() -> bool:
            return bool(of_type(events, "logistics.distribution.cancelled"))

        await eventually(published, what="logistics.distribution.cancelled")
    [event] = of_type(events, "logistics.distribution.cancelled")
    assert event.compound_id == uuid.UUID(village.compound.id)
    assert (event.payload["households"], event.payload["items"]) == (0, [])
    assert event.payload["revision"] == 2
    assert await undelivered(client, town, plan_id) == {}


async def test_nothing_is_issued_for_a_cancelled_plan_and_its_top_ups_are_cancelled_with_it(
    client: httpx.AsyncClient, town: Town, platform: Platform, village: Village
) -> None:
    plan_id = await planned(client, town, village)
    # F registered since: a top-up reserves F's two packages and its formula tin.
    await household(client, village.house2, town.operator, code="F", people=6, infants=1)
    await in_directory(platform, residents=29)
    made = await client.post(
        f"/v1/distribution-plans/{plan_id}/top-ups", json={}, headers=town.operator
    )
    assert made.status_code == 201, made.text
    top_up = made.json()["id"]
    assert await shelf(client, town, village) == {
        "Supply package": (100, 9, 91),
        "Formula tin": (20, 4, 16),
    }
    cancel = f"/v1/distribution-plans/{plan_id}/cancel"
    done = await client.post(cancel, json={"reason": "wrong week"}, headers=town.operator)
    assert done.status_code == 200, done.text

    # The top-up went with its original: cancelled, its households too, its stock released.
    read = await client.get(f"/v1/distribution-plans/{top_up}", headers=town.operator)
    assert read.json()["status"] == "cancelled" and read.json()["cancel_reason"] == "wrong week"
    assert {hh["status"] for hh in (await undelivered(client, town, top_up)).values()} == {
        "cancelled"
    }
    assert await shelf(client, town, village) == {
        "Supply package": (100, 0, 100),
        "Formula tin": (20, 0, 20),
    }
    again = await client.post(
        f"/v1/distribution-plans/{top_up}/top-ups", json={}, headers=town.operator
    )
    assert again.status_code == 409, again.text

    # Goods issued "for the plan" after it was cancelled would be traced to nobody's list.
    body = {
        "holder_id": village.compound.id,
        "reference_kind": "plan",
        "reference_id": plan_id,
        "lines": [{"item_id": village.package, "quantity": "1"}],
    }
    for reference in (plan_id, top_up):
        refused = await client.post(
            "/v1/stock/issues", json={**body, "reference_id": reference}, headers=town.operator
        )
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["errors"][0]["field"] == "reference_id"
        assert "cancelled" in problem["detail"] and "wrong week" in problem["detail"]
    assert await issues(client, town, village) == []
    assert await shelf(client, town, village) == {
        "Supply package": (100, 0, 100),
        "Formula tin": (20, 0, 20),
    }


async def test_partial_acceptance_issues_what_was_accepted_and_releases_the_rest(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    plan_id = await planned(client, town, village)
    h = village.households
    url = f"/v1/distribution-plans/{plan_id}/deliveries"

    def accepted(ref: str, household: str, rejected: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "client_ref": ref,
            "household_id": h[household],
            "outcome": "delivered",
            "received_by": f"户{household}-0",
            "rejected": rejected,
            "at": now(),
        }

    body = {
        "deliveries": [
            # A (two packages) turns one back, damaged; C keeps its package, not the tin.
            accepted("pa-1", "A", [{"item_id": village.package, "quantity": 1}]),
            accepted("pa-2", "C", [{"item_id": village.formula, "quantity": 1}]),
            # B was allocated one package and no formula.
            accepted("pa-3", "B", [{"item_id": village.package, "quantity": 3}]),
            accepted("pa-4", "B", [{"item_id": village.formula, "quantity": 1}]),
        ]
    }
    for _ in range(2):  # resent: nothing more is issued or released
        response = await client.post(url, json=body, headers=town.operator)
        assert response.status_code == 200, response.text
    errors = {(e["row"], e["field"]) for e in response.json()["errors"]}
    assert errors == {(2, "rejected.0.quantity"), (3, "rejected.0.item_id")}
    assert await shelf(client, town, village) == {
        "Supply package": (98, 4, 94),
        "Formula tin": (20, 2, 18),
    }
    card = await issues(client, town, village)
    assert sorted((e["to_household_id"], e["item_id"], e["quantity"]) for e in card) == sorted(
        [(h["A"], village.package, -1), (h["C"], village.package, -1)]
    )
    # Rejecting goods is for a household's own confirmation, not a whole unit's.
    unit = f"/v1/distribution-plans/{plan_id}/units/{village.compound.unit_ids[1]}/deliveries"
    whole = {
        "client_ref": "pa-unit",
        "outcome": "delivered",
        "received_by": "楼组长",
        "rejected": [{"item_id": village.formula, "quantity": 1}],
        "at": now(),
    }
    assert (await client.post(unit, json=whole, headers=town.operator)).status_code == 422


async def test_a_whole_unit_leaves_households_refused_moved_or_sealed_as_they_were(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    # Unit 2 holds C (1 package, 1 tin) and D (2 packages, 2 tins).
    h = village.households
    unit_id = village.compound.unit_ids[1]

    async def one_by_one(plan_id: str, *marks: tuple[str, str]) -> None:
        rows = [
            {
                "client_ref": f"mark-{code}",
                "household_id": h[code],
                "outcome": "not_delivered",
                "reason": reason,
                "at": now(),
            }
            for code, reason in marks
        ]
        url = f"/v1/distribution-plans/{plan_id}/deliveries"
        response = await client.post(url, json={"deliveries": rows}, headers=town.operator)
        assert response.status_code == 200, response.text

    whole = {"client_ref": "unit-2", "outcome": "delivered", "received_by": "楼组长", "at": now()}
    first = await planned(client, town, village)
    await one_by_one(first, ("D", "refused"))
    unit = f"/v1/distribution-plans/{first}/units/{unit_id}/deliveries"
    done = await client.post(unit, json=whole, headers=town.operator)
    assert done.status_code == 200, done.text
    states = {s["household_id"]: (s["status"], s["reason"]) for s in done.json()["households"]}
    assert states == {h["C"]: ("delivered", None), h["D"]: ("undelivered", "refused")}
    assert done.json()["changed"] == 1
    assert [(k["household_id"], k["reason"]) for k in done.json()["kept"]] == [(h["D"], "refused")]
    # Only C's goods left the shelf; D's stay reserved.
    assert await shelf(client, town, village) == {
        "Supply package": (99, 6, 93),
        "Formula tin": (19, 2, 17),
    }
    resent = await client.post(unit, json=whole, headers=town.operator)
    assert resent.json()["kept"] == done.json()["kept"]
    assert (resent.json()["changed"], resent.json()["unchanged"]) == (0, 1)

    second = await planned(client, town, village)
    await one_by_one(second, ("C", "unit_sealed"), ("D", "moved"))
    unit = f"/v1/distribution-plans/{second}/units/{unit_id}/deliveries"
    none = await client.post(unit, json=whole, headers=town.operator)
    assert none.status_code == 200, none.text
    assert none.json()["changed"] == 0
    assert sorted((k["household_id"], k["reason"]) for k in none.json()["kept"]) == sorted(
        [(h["C"], "unit_sealed"), (h["D"], "moved")]
    )
    left = await undelivered(client, town, second)
    assert (left["C"]["status"], left["C"]["door_delivery"]) == ("pending", True)
    assert (left["D"]["status"], left["D"]["reason"]) == ("undelivered", "moved")


async def test_a_confirmation_dated_in_the_future_is_refused_naming_at(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """A phone whose clock is a year ahead (or a typed 2030) does not record a household as
    delivered at a time that has not come: the row is refused on `at`, the good rows apply,
    a whole unit's confirmation is a 422 naming `at`, and nothing leaves the shelf for them."""
    plan_id = await planned(client, town, village)
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    h = village.households
    ahead = "2030-01-01T09:00:00+08:00"
    rows = [
        {"household_id": h["A"], "at": ahead},
        {"household_id": h["B"], "at": datetime.now(UTC).isoformat()},
    ]
    body = {
        "deliveries": [
            {"client_ref": f"p9-{n}", "outcome": "delivered", "received_by": "户", **row}
            for n, row in enumerate(rows)
        ]
    }
    answer = await client.post(url, json=body, headers=town.operator)
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] == 1
    assert [(e["row"], e["field"]) for e in answer.json()["errors"]] == [(0, "at")]
    assert "future" in answer.json()["errors"][0]["message"]
    alone = await client.post(
        url, json={"deliveries": body["deliveries"][:1]}, headers=town.operator
    )
    assert alone.status_code == 422, alone.text
    assert alone.json()["errors"][0]["field"] == "at"

    unit = f"/v1/distribution-plans/{plan_id}/units/{village.compound.unit_ids[1]}/deliveries"
    whole = {"client_ref": "p9-unit", "outcome": "delivered", "received_by": "楼组长", "at": ahead}
    refused = await client.post(unit, json=whole, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "at"

    left = await undelivered(client, town, plan_id)
    assert "A" in left and "B" not in left
    assert {left[c]["status"] for c in ("A", "E")} == {"pending"}


async def test_a_confirmation_dated_before_its_plan_was_made_is_refused_naming_at(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """A phone whose clock fell back to 2022 (a dead battery) does not record a household as
    delivered, nor tried, years before the plan that sent the goods existed: those rows are
    refused on `at` saying so, the good rows apply (a phone's few minutes behind are within
    the clocks' tolerance), a whole unit's confirmation is a 422 naming `at`, and nothing
    leaves the shelf for the refused rows."""
    plan_id = await planned(client, town, village)
    made = await client.get(f"/v1/distribution-plans/{plan_id}", headers=town.operator)
    created_at = datetime.fromisoformat(made.json()["created_at"])
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    h = village.households
    behind = "2022-04-05T09:12:00+08:00"
    delivered = {"outcome": "delivered", "received_by": "户"}
    absent = {"outcome": "not_delivered", "reason": "absent"}
    slow = (created_at - timedelta(minutes=5)).isoformat()
    rows = [
        {"household_id": h["A"], "at": behind, **delivered},
        {"household_id": h["B"], "at": behind, **absent},
        {"household_id": h["C"], "at": slow, **delivered},
        {"household_id": h["D"], "at": now(), **delivered},
    ]
    body = {"deliveries": [{"client_ref": f"p0-{n}", **row} for n, row in enumerate(rows)]}
    answer = await client.post(url, json=body, headers=town.operator)
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] == 2
    errors = answer.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(0, "at"), (1, "at")]
    assert all("before" in e["message"] for e in errors), errors
    alone = await client.post(
        url, json={"deliveries": body["deliveries"][1:2]}, headers=town.operator
    )
    assert alone.status_code == 422, alone.text
    assert [e["field"] for e in alone.json()["errors"]] == ["at"]

    unit = f"/v1/distribution-plans/{plan_id}/units/{village.compound.unit_ids[1]}/deliveries"
    whole = {"client_ref": "p0-unit", "at": behind, **delivered}
    refused = await client.post(unit, json=whole, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "at"

    left = await undelivered(client, town, plan_id)
    assert sorted(left) == ["A", "B", "E"]
    assert {(left[c]["status"], left[c]["reason"]) for c in "ABE"} == {("pending", None)}
    # Only C's and D's goods left the shelf (packages C 1, D 2; formula C 1, D 2).
    assert await shelf(client, town, village) == {
        "Supply package": (97, 4, 93),
        "Formula tin": (17, 0, 17),
    }


async def test_blank_names_and_reasons_are_refused_naming_the_field(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """What a deliverer or planner must say is not said by spaces: a plan without a name (its
    pick lists print it), a delivery taken by nobody, a cancellation without a reason (the
    409s after it say why) are refused with 422 naming the field, and nothing changes."""
    blank = "  \u3000"
    unnamed = await client.post(
        "/v1/distribution-plans",
        json={
            "town_id": str(town.id),
            "name": blank,
            "scope": {"kind": "compounds", "ids": [village.compound.id]},
            "lines": village.lines,
        },
        headers=town.operator,
    )
    assert unnamed.status_code == 422, unnamed.text
    assert unnamed.json()["errors"][0]["field"] == "name"

    plan_id = await planned(client, town, village)
    h = village.households
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    nobody = _to("A", h, "b-1", outcome="delivered", received_by=blank)
    refused = await client.post(url, json={"deliveries": [nobody]}, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "deliveries.0.received_by"
    unit = f"/v1/distribution-plans/{plan_id}/units/{village.compound.unit_ids[1]}/deliveries"
    whole = {"client_ref": "b-unit", "outcome": "delivered", "received_by": blank, "at": now()}
    refused = await client.post(unit, json=whole, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "received_by"
    assert (await undelivered(client, town, plan_id))["A"]["status"] == "pending"

    cancel = f"/v1/distribution-plans/{plan_id}/cancel"
    unexplained = await client.post(cancel, json={"reason": blank}, headers=town.operator)
    assert unexplained.status_code == 422, unexplained.text
    assert unexplained.json()["errors"][0]["field"] == "reason"
    still = await client.get(f"/v1/distribution-plans/{plan_id}", headers=town.operator)
    assert still.json()["status"] == "planned"
    # Named, it is kept without the spaces around it.
    done = await client.post(cancel, json={"reason": " planned twice "}, headers=town.operator)
    assert done.status_code == 200, done.text
    assert done.json()["cancel_reason"] == "planned twice"


async def test_the_donation_register_shows_a_plan_s_deliveries_per_building_not_per_household(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """A donor is told where the goods went: to which plan and building. Each delivered
    household has its own issue line on the stock card, but the register (and its export)
    sums them per plan and building: a plan of thousands of households is a few rows."""
    body = {"town_id": str(town.id), "name": "Vegetable box", "unit": "box"}
    box = str((await post(client, "/v1/items", body, town.operator))["id"])
    donated = {
        "holder_id": village.compound.id,
        "source": "donation",
        "donor": "Riverside Farms",
        "lines": [{"item_id": box, "quantity": 20}],
    }
    await post(client, "/v1/stock/receipts", donated, town.operator)
    made = await plan(
        client, town, {"kind": "compounds", "ids": [village.compound.id]}, lines=[{"item_id": box}]
    )
    assert made.status_code == 201, made.text
    plan_id = made.json()["id"]
    h = village.households
    confirmations = [_to(code, h, f"v-{code}") for code in ("A", "B", "D", "E")]
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    done = await client.post(url, json={"deliveries": confirmations}, headers=town.operator)
    assert done.status_code == 200 and done.json()["changed"] == 4, done.text

    register = await client.get(
        "/v1/donations", params={"donor": "Riverside Farms"}, headers=town.operator
    )
    [line] = register.json()["items"][0]["lines"]
    went = sorted(
        (w["kind"], w["building"], w["reference_id"], w["quantity"]) for w in line["went_to"]
    )
    assert went == [
        ("in_stock", None, None, 14),  # C's box still reserved for it, on the shelf
        ("issued", village.compound.building_code, plan_id, 5),  # A 2, B 1, D 2
        ("issued", village.house2.building_code, plan_id, 1),  # E
    ]
    exported = await client.get(
        "/v1/donations/export", params={"donor": "Riverside Farms"}, headers=town.operator
    )
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert sorted((r["went_to"], r["building"], r["quantity"]) for r in rows) == [
        ("in_stock", "", "14"),
        ("issued", village.compound.building_code, "5"),
        ("issued", village.house2.building_code, "1"),
    ]


async def test_the_printable_pick_list_shows_who_was_delivered_and_who_was_not(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """A building leader reprints the list halfway through: the households delivered are
    marked delivered (not to be knocked on again), one tried without success says why, the
    rest are still to deliver, as the CSV's status column says."""
    plan_id = await planned(client, town, village)
    h = village.households
    absent = {"outcome": "not_delivered", "reason": "absent"}
    body = {"deliveries": [_to("A", h, "pp-1"), _to("B", h, "pp-2", **absent)]}
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    done = await client.post(url, json=body, headers=town.operator)
    assert done.status_code == 200 and done.json()["changed"] == 2, done.text

    page = await client.get(
        f"/v1/distribution-plans/{plan_id}/pick-list?format=html", headers=town.operator
    )
    assert page.status_code == 200, page.text
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page.text):
        tds = re.findall(r"<td[^>]*>(.*?)</td>", row)
        if tds:
            rows.setdefault(tds[0], []).append(" ".join(tds))
    assert all("delivered" in r and "not delivered" not in r for r in rows["A"]), rows["A"]
    assert all("absent" in r for r in rows["B"]), rows["B"]
    assert all("pending" in r for code in "CDE" for r in rows[code]), rows


async def test_a_failed_try_arriving_late_does_not_undo_a_later_one(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """Two phones at household B's door: the family refused the package; the 'absent' of a
    minute before, from a phone that was offline, arrives after it. B stays 'refused' (a standing
    reason a whole-unit confirmation respects), and the late try is still in the history."""
    plan_id = await planned(client, town, village)
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    h = village.households
    # Minutes apart, since the plan was made: a try before it is refused.
    base = datetime.now(UTC)
    refused = {"outcome": "not_delivered", "reason": "refused"}
    at = (base - timedelta(minutes=2)).isoformat()
    later = {**_to("B", h, "p9-1000", **refused), "at": at}
    absent = {"outcome": "not_delivered", "reason": "absent"}
    at = (base - timedelta(minutes=3)).isoformat()
    earlier = {**_to("B", h, "p8-0900", **absent), "at": at}
    for sent in (later, earlier):
        answered = await client.post(url, json={"deliveries": [sent]}, headers=town.operator)
        assert answered.status_code == 200, answered.text
    left = await undelivered(client, town, plan_id)
    assert (left["B"]["status"], left["B"]["reason"]) == ("undelivered", "refused")

    # A try after both is news: it applies.
    again = {**_to("B", h, "p9-1100", **absent), "at": base.isoformat()}
    answered = await client.post(url, json={"deliveries": [again]}, headers=town.operator)
    assert answered.status_code == 200, answered.text
    assert (await undelivered(client, town, plan_id))["B"]["reason"] == "absent"


async def test_a_contradictory_confirmation_names_the_field_to_correct(
    client: httpx.AsyncClient, town: Town, village: Village
) -> None:
    """A phone's confirmation that contradicts itself is refused naming the field: nobody
    received what was not delivered, a delivery names who took it, only a failed try has a
    reason."""
    plan_id = await planned(client, town, village)
    url = f"/v1/distribution-plans/{plan_id}/deliveries"
    h = village.households
    cases = [
        ({"outcome": "not_delivered", "reason": "absent", "received_by": "王"}, "received_by"),
        ({"outcome": "delivered"}, "received_by"),
        ({"outcome": "delivered", "received_by": "王", "reason": "absent"}, "reason"),
        ({"outcome": "not_delivered"}, "reason"),
    ]
    for n, (outcome, field) in enumerate(cases):
        body = {"deliveries": [_to("B", h, f"px-{n}", **outcome)]}
        refused = await client.post(url, json=body, headers=town.operator)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == f"deliveries.0.{field}", refused.text
    assert (await undelivered(client, town, plan_id))["B"]["status"] == "pending"
