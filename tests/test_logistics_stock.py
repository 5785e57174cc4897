"""Stock and donations, through the API on both backends: donations traced to where they
went, transfers with losses in transit, adjustments and counts, overdraws refused saying by
how much, and two reservations of the last stock at once (one wins, one is refused)."""

import asyncio
import csv
import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest.mock import patch
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from cordon.platform import Platform
from services.logistics.items.service import expand
from services.logistics.models import Batch, Entry, directory
from services.logistics.reservations.service import Reference, issue_reserved, reserve
from shared.auth import Principal
from shared.authz import Role, Scope, ScopeKind
from shared.problems import Conflict
from shared.settings import Settings
from tests.conftest import Town
from tests.support import (
    Compound,
    committee_staff,
    eventually,
    headers_for,
    listening,
    make_building,
    make_compound,
    make_resident,
    of_type,
    post,
)

pytestmark = pytest.mark.usefixtures("workers")


async def known_to_logistics(platform: Platform, *place_ids: object) -> None:
    """Wait until the logistics directory holds these places (towns, compounds, buildings)."""
    wanted = {uuid.UUID(str(p)) for p in place_ids}

    async def arrived() -> bool:
        async with platform.runtime("logistics").uow(Principal.system()) as uow:
            Place = directory.models.Place
            found = await uow.session.scalars(select(Place.id).where(Place.id.in_(wanted)))
            return set(found) == wanted

    await eventually(arrived, what="places in the logistics directory")


@contextmanager
def on_the_town_s_calendar(day: date) -> Iterator[None]:
    """The town office's date is ``day`` meanwhile: goods received then, good until a day
    before today, are expired stock on the shelf today (a receipt takes in nothing expired
    by its own day)."""
    with patch.object(Settings, "today", lambda _: day):
        yield


async def compound(client: httpx.AsyncClient, town: Town, platform: Platform) -> Compound:
    made = await make_compound(client, town.id, town.operator, code="C03")
    # Its building too: the register names the building stock was issued to.
    await known_to_logistics(platform, town.id, made.id, made.building_id)
    return made


async def help_request(
    client: httpx.AsyncClient, town: Town, platform: Platform, place: Compound, name: str = "赵大妈"
) -> str:
    """A help request (groceries) for a resident of the compound, once logistics knows them."""
    resident = await make_resident(client, place, town.operator, name=name)

    async def arrived() -> bool:
        async with platform.runtime("logistics").uow(Principal.system()) as uow:
            Resident = directory.models.Resident
            query = select(Resident.id).where(Resident.id == uuid.UUID(resident["id"]))
            return await uow.session.scalar(query) is not None

    await eventually(arrived, what="the resident in the logistics directory")
    body = {"resident_id": resident["id"], "kind": "groceries", "details": "rice, 12.5 kg"}
    return str((await post(client, "/v1/requests", body, town.operator))["id"])


async def item(
    client: httpx.AsyncClient, town: Town, name: str, unit: str, *, perishable: bool = False
) -> str:
    body = {"town_id": str(town.id), "name": name, "unit": unit, "perishable": perishable}
    return str((await post(client, "/v1/items", body, town.operator))["id"])


async def balance(
    client: httpx.AsyncClient, headers: Any, holder_id: object, item_id: str
) -> dict[str, Any]:
    response = await client.get(
        "/v1/stock/balances",
        params={"holder_id": str(holder_id), "item_id": item_id},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    found = response.json()
    return found[0] if found else {"on_hand": 0, "reserved": 0, "available": 0, "batches": []}


async def receipt(
    client: httpx.AsyncClient,
    headers: Any,
    holder_id: object,
    lines: list[dict[str, Any]],
    **more: Any,
) -> dict[str, Any]:
    body = {"holder_id": str(holder_id), "source": "government", "lines": lines, **more}
    return dict(await post(client, "/v1/stock/receipts", body, headers))


async def test_a_donation_is_registered_with_where_it_went(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    async with listening(platform, "logistics.#") as events:
        donated = await receipt(
            client,
            h,
            c03.id,
            [{"item_id": rice, "quantity": "100", "batch": "R-2204"}],
            source="donation",
            donor="Riverside Rice Co.",
            donor_contact="13912345678",
        )
        request_id = await help_request(client, town, platform, c03)
        issue = {
            "holder_id": c03.id,
            "reference_kind": "request",
            "reference_id": request_id,
            "reference_label": "groceries for 3-101",
            "building_id": c03.building_id,
            "lines": [{"item_id": rice, "quantity": "12.5"}],
        }
        issued = await post(client, "/v1/stock/issues", issue, h)
        assert [line["quantity"] for line in issued] == [12.5]
        await eventually(
            lambda: _arrived(events, "logistics.donation.received"), what="donation event"
        )
    [event] = of_type(events, "logistics.donation.received")
    assert event.payload["donor"] == "Riverside Rice Co."
    assert event.payload["lines"][0]["quantity"] == 100
    assert event.payload["stock_version"] >= 1
    assert event.compound_id == uuid.UUID(c03.id)
    # A donation without its donor is refused, naming the field; nothing is written.
    refused = await client.post(
        "/v1/stock/receipts",
        json={
            "holder_id": c03.id,
            "source": "donation",
            "lines": [{"item_id": rice, "quantity": 1}],
        },
        headers=h,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "donor"

    register = (await client.get("/v1/donations", headers=h)).json()["items"]
    [donation] = register
    assert donation["receipt_id"] == donated["id"]
    assert donation["donor_contact"] == "139****5678"  # masked unless revealed
    [line] = donation["lines"]
    assert line["quantity"] == 100 and line["batch"] == "R-2204"
    went = {
        (w["kind"], w["quantity"], w.get("reference_label"), w.get("building"))
        for w in line["went_to"]
    }
    assert went == {
        ("issued", 12.5, "groceries for 3-101", "1"),
        ("in_stock", 87.5, None, None),
    }

    exported = await client.get("/v1/donations/export?format=csv", headers=h)
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    issued_row = next(r for r in rows if r["went_to"] == "issued")
    assert issued_row["donor"] == "Riverside Rice Co."
    assert issued_row["donor_contact"] == "13912345678"
    assert issued_row["reference"] == "groceries for 3-101"
    assert issued_row["quantity"] == "12.5" and issued_row["building"] == "1"
    # Its time as the API states every time: in UTC, with Z.
    assert donation["received_at"].endswith("Z")
    assert {r["received_at"] for r in rows} == {donation["received_at"]}
    xlsx = await client.get("/v1/donations/export?format=xlsx", headers=h)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0][1] == "donor" and {r[9] for r in cells[1:]} == {"issued", "in_stock"}
    assert {r[0] for r in cells[1:]} == {donation["received_at"]}
    # Quantities are numbers a committee can sum; a phone stays text, as written.
    issued_cells = next(r for r in cells[1:] if r[9] == "issued")
    assert issued_cells[8] == 100 and issued_cells[-1] == 12.5
    assert issued_cells[2] == "13912345678"


async def _arrived(events: list[Any], event_type: str) -> bool:
    return bool(of_type(events, event_type))


async def test_a_transfer_records_what_was_lost_in_transit(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    # Two batches at the warehouse: the one expiring first goes first.
    await receipt(
        client,
        h,
        town.id,
        [
            {"item_id": rice, "quantity": "200", "batch": "late", "expires_on": "2099-12-01"},
            {"item_id": rice, "quantity": "30", "batch": "early", "expires_on": "2099-01-01"},
        ],
    )
    async with listening(platform, "logistics.stock.#") as events:
        transfer = await post(
            client,
            "/v1/stock/transfers",
            {"to_holder_id": c03.id, "lines": [{"item_id": rice, "quantity": 50}]},
            h,
        )
        assert [(line["batch"], line["dispatched"]) for line in transfer["lines"]] == [
            ("early", 30),
            ("late", 20),
        ]
        assert (await balance(client, h, town.id, rice))["on_hand"] == 180
        assert (await balance(client, h, c03.id, rice))["on_hand"] == 0
        late = next(line for line in transfer["lines"] if line["batch"] == "late")
        received = await post(
            client,
            f"/v1/stock/transfers/{transfer['id']}/receive",
            {"lines": [{"line_id": late["id"], "received": "17"}]},
            h,
        )
        await eventually(
            lambda: _arrived(events, "logistics.stock.transferred"), what="transfer event"
        )
    assert received["status"] == "received"
    assert {line["batch"]: line["lost"] for line in received["lines"]} == {"early": 0, "late": 3}
    store = await balance(client, h, c03.id, rice)
    assert store["on_hand"] == 47
    assert [(b["batch"], b["on_hand"]) for b in store["batches"]] == [("early", 30), ("late", 17)]
    [moved] = of_type(events, "logistics.stock.transferred")
    assert {line["batch"]: line["lost"] for line in moved.payload["lines"]} == {
        "early": 0,
        "late": 3,
    }
    # Received twice: refused, nothing added.
    again = await client.post(f"/v1/stock/transfers/{transfer['id']}/receive", json={}, headers=h)
    assert again.status_code == 409
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 47
    # More than the warehouse holds: refused by how much, nothing dispatched.
    short = await client.post(
        "/v1/stock/transfers",
        json={"to_holder_id": c03.id, "lines": [{"item_id": rice, "quantity": 200}]},
        headers=h,
    )
    assert short.status_code == 409
    assert short.json()["errors"][0]["message"] == "short by 20 kg of rice at the town warehouse"
    assert (await balance(client, h, town.id, rice))["on_hand"] == 180


async def test_expired_goods_are_not_received_as_stock_however_far_back_the_receipt_is_dated(
    client: httpx.AsyncClient, town: Town, platform: Platform, settings: Settings
) -> None:
    """Formula that expired yesterday is refused on a receipt, and still refused when the
    receipt claims the goods came three days ago: expiry is judged on the town office's date
    today, not on a date the receipt states (which an operator may set at will). A receipt
    dated in the future is refused naming `received_at`. Nothing of a refused receipt is on
    the card."""
    h = town.operator
    c03 = await compound(client, town, platform)
    formula = await item(client, town, "infant formula", "box", perishable=True)
    # The town office's calendar: expiry is judged on its date today.
    today = datetime.now(settings.zone).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    good = {"item_id": formula, "quantity": 40, "expires_on": "2099-06-30"}
    expired = {"item_id": formula, "quantity": 12, "expires_on": yesterday}
    body = {"holder_id": c03.id, "source": "donation", "donor": "Riverside Rice Co."}
    refused = await client.post(
        "/v1/stock/receipts", json={**body, "lines": [good, expired]}, headers=h
    )
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "lines.1.expires_on"
    assert f"already expired on {yesterday}" in error["message"]
    # Nothing of the receipt is on the card: neither the good line nor the expired one.
    assert (await balance(client, h, c03.id, formula))["on_hand"] == 0
    # Backdated three days, to before it expired: still expired goods, still refused.
    arrived = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    backdated = await client.post(
        "/v1/stock/receipts",
        json={**body, "received_at": arrived, "lines": [good, expired]},
        headers=h,
    )
    assert backdated.status_code == 422, backdated.text
    assert [e["field"] for e in backdated.json()["errors"]] == ["lines.1.expires_on"]
    assert (await balance(client, h, c03.id, formula))["on_hand"] == 0
    # Dated a year ahead: goods that have not come yet.
    ahead = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    early = await client.post(
        "/v1/stock/receipts", json={**body, "received_at": ahead, "lines": [good]}, headers=h
    )
    assert early.status_code == 422, early.text
    assert [e["field"] for e in early.json()["errors"]] == ["received_at"]
    # Received three days ago and good until after today: on the card.
    accepted = await client.post(
        "/v1/stock/receipts", json={**body, "received_at": arrived, "lines": [good]}, headers=h
    )
    assert accepted.status_code == 201, accepted.text
    assert (await balance(client, h, c03.id, formula))["on_hand"] == 40


async def test_a_receipt_dated_years_back_is_refused_naming_received_at(
    client: httpx.AsyncClient, town: Town, platform: Platform, settings: Settings
) -> None:
    """Goods stated as received in 1990 would head the stock card and the donation register,
    before anything the store ever held: a typo in the year, refused naming `received_at`,
    nothing of it on the card nor in the register. Paper receipts from the lockdown's first
    weeks, entered late, are taken as stated."""
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    body = {
        "holder_id": c03.id,
        "source": "donation",
        "donor": "Riverside Rice Co.",
        "lines": [{"item_id": rice, "quantity": 50}],
    }
    for holder in (c03.id, str(town.id)):
        old = await client.post(
            "/v1/stock/receipts",
            json={**body, "holder_id": holder, "received_at": "1990-04-01T09:00:00+08:00"},
            headers=h,
        )
        assert old.status_code == 422, old.text
        assert [e["field"] for e in old.json()["errors"]] == ["received_at"], old.text
        assert "1990-04-01" in old.json()["detail"]
        assert (await balance(client, h, holder, rice))["on_hand"] == 0
    register = await client.get("/v1/donations", headers=h)
    assert register.status_code == 200 and register.json()["items"] == [], register.text
    # Just beyond the bound back: refused; a day within it: on the card as stated.
    bound = timedelta(days=settings.backdate_days)
    now = datetime.now(UTC)
    beyond = (now - bound - timedelta(hours=1)).isoformat()
    refused = await client.post(
        "/v1/stock/receipts", json={**body, "received_at": beyond}, headers=h
    )
    assert refused.status_code == 422, refused.text
    within = (now - bound + timedelta(days=1)).isoformat()
    accepted = await post(client, "/v1/stock/receipts", {**body, "received_at": within}, h)
    assert accepted["received_at"].startswith(within[:16])
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 50


async def test_adjustments_and_counts_keep_the_card_and_the_balance_together(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    formula = await item(client, town, "infant formula", "box", perishable=True)
    # A perishable item's receipt needs its expiry.
    missing = await client.post(
        "/v1/stock/receipts",
        json={
            "holder_id": c03.id,
            "source": "purchase",
            "lines": [{"item_id": formula, "quantity": 40}],
        },
        headers=h,
    )
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "lines.0.expires_on"
    line = {"item_id": formula, "quantity": 40, "expires_on": "2099-06-30"}
    [entry] = (await receipt(client, h, c03.id, [line]))["entries"]
    batch_id = entry["batch_id"]
    adjust = {
        "holder_id": c03.id,
        "lines": [{"batch_id": batch_id, "quantity": -2, "reason": "damaged"}],
    }
    [adjusted] = await post(client, "/v1/stock/adjustments", adjust, h)
    assert (adjusted["kind"], adjusted["reason"], adjusted["quantity"]) == (
        "adjustment",
        "damaged",
        -2,
    )
    wrong_way = {**adjust, "lines": [{"batch_id": batch_id, "quantity": 2, "reason": "damaged"}]}
    refused = await client.post("/v1/stock/adjustments", json=wrong_way, headers=h)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "lines.0.quantity"
    too_much = {**adjust, "lines": [{"batch_id": batch_id, "quantity": -50, "reason": "lost"}]}
    refused = await client.post("/v1/stock/adjustments", json=too_much, headers=h)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["message"] == (
        "short by 12 boxes of infant formula at compound C03"
    )
    counted = await post(
        client,
        "/v1/stock/counts",
        {"holder_id": c03.id, "lines": [{"batch_id": batch_id, "counted": 35}]},
        h,
    )
    assert counted["lines"][0] | {"batch_id": None} == {
        "batch_id": None,
        "item_id": formula,
        "expected": 38,
        "counted": 35,
        "difference": -3,
    }
    assert (await balance(client, h, c03.id, formula))["on_hand"] == 35
    card = (await client.get("/v1/stock/entries", params={"holder_id": c03.id}, headers=h)).json()[
        "items"
    ]
    assert [(e["kind"], e["reason"], e["quantity"]) for e in card] == [
        ("receipt", None, 40),
        ("adjustment", "damaged", -2),
        ("adjustment", "count_correction", -3),
    ]
    # A count below what is reserved is refused until the reservation is released.
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        plan = Reference(kind="plan", id=uuid.uuid4(), label="April packages")
        await reserve(
            uow, holder_id=uuid.UUID(c03.id), lines=[(uuid.UUID(formula), 30)], reference=plan
        )
        await uow.commit()
    below = await client.post(
        "/v1/stock/counts",
        json={"holder_id": c03.id, "lines": [{"batch_id": batch_id, "counted": 20}]},
        headers=h,
    )
    assert below.status_code == 409
    assert "release 10 boxes of infant formula first" in below.json()["detail"]
    assert (await balance(client, h, c03.id, formula))["available"] == 5


async def test_an_overdraw_is_refused_saying_by_how_much(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    oil = await item(client, town, "oil", "piece")
    await receipt(
        client, h, c03.id, [{"item_id": rice, "quantity": 100}, {"item_id": oil, "quantity": 10}]
    )
    body = {
        "holder_id": c03.id,
        "reference_id": await help_request(client, town, platform, c03),
        "lines": [{"item_id": rice, "quantity": 112}, {"item_id": oil, "quantity": 10}],
    }
    response = await client.post("/v1/stock/issues", json=body, headers=h)
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["detail"] == "not enough stock: short by 12 kg of rice at compound C03"
    assert problem["errors"] == [
        {
            "field": "lines.0.quantity",
            "message": "short by 12 kg of rice at compound C03",
            "item_id": rice,
            "holder_id": c03.id,
            "short": 12,
            "unit": "kg",
        }
    ]
    # Nothing half-written: the oil, which was there, was not issued either.
    assert (await balance(client, h, c03.id, oil))["on_hand"] == 10
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 100


async def test_an_issue_for_a_plan_or_request_nobody_can_find_is_refused_naming_it(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    other = await make_compound(client, town.id, h, code="C04")
    await known_to_logistics(platform, other.id)
    rice = await item(client, town, "rice", "kg")
    await receipt(client, h, c03.id, [{"item_id": rice, "quantity": 100}])
    theirs = await help_request(client, town, platform, other, "钱外区")
    staff = await committee_staff(client, town, c03, "c03-issuer")
    line = [{"item_id": rice, "quantity": 5}]

    async def refused(headers: Any, field: str, **named: Any) -> None:
        body = {"holder_id": c03.id, "reference_id": str(uuid.uuid4()), "lines": line, **named}
        response = await client.post("/v1/stock/issues", json=body, headers=headers)
        assert response.status_code == 404, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]

    # A request or a plan that does not exist, or a request the caller cannot see (another
    # committee's), is named; so is a building that is not there.
    await refused(h, "reference_id", reference_kind="request")
    await refused(h, "reference_id", reference_kind="plan")
    await refused(staff, "reference_id", reference_id=theirs)
    mine = await help_request(client, town, platform, c03, "孙阿姨")
    await refused(h, "building_id", reference_id=mine, building_id=str(uuid.uuid4()))
    # Nothing left the shelf, and nothing is held for anyone.
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 100
    assert (await balance(client, h, c03.id, rice))["reserved"] == 0
    card = await client.get(
        "/v1/stock/entries", params={"holder_id": c03.id, "kind": "issue"}, headers=h
    )
    assert card.json()["items"] == []
    # The request that is there, in the caller's scope: issued.
    body = {"holder_id": c03.id, "reference_id": mine, "lines": line}
    issued = await client.post("/v1/stock/issues", json=body, headers=staff)
    assert issued.status_code == 201, issued.text
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 95


async def test_a_requests_goods_are_traced_to_its_residents_building(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """A formula tin issued for a help request without naming the building still shows in
    the donation register at the resident's building (the request says where it went), and
    naming another building of the compound is a 422 naming `building_id`: the register
    would send the donor's goods to a door nobody asked from."""
    h = town.operator
    c03 = await compound(client, town, platform)
    other = await make_building(client, c03, h, code="9")
    await known_to_logistics(platform, other.building_id)
    formula = await item(client, town, "formula", "box")
    await receipt(
        client,
        h,
        c03.id,
        [{"item_id": formula, "quantity": 10}],
        source="donation",
        donor="Milk Co.",
    )
    request_id = await help_request(client, town, platform, c03)
    line = [{"item_id": formula, "quantity": 1}]
    body = {"holder_id": c03.id, "reference_id": request_id, "lines": line}
    elsewhere = await client.post(
        "/v1/stock/issues", json={**body, "building_id": other.building_id}, headers=h
    )
    assert elsewhere.status_code == 422, elsewhere.text
    assert [e["field"] for e in elsewhere.json()["errors"]] == ["building_id"]
    assert (await balance(client, h, c03.id, formula))["on_hand"] == 10

    issued = await client.post("/v1/stock/issues", json=body, headers=h)
    assert issued.status_code == 201, issued.text
    card = await client.get(
        "/v1/stock/entries", params={"holder_id": c03.id, "kind": "issue"}, headers=h
    )
    assert [e["to_building_id"] for e in card.json()["items"]] == [c03.building_id]
    [donation] = (await client.get("/v1/donations", headers=h)).json()["items"]
    went = {(w["kind"], w["quantity"], w["building"]) for w in donation["lines"][0]["went_to"]}
    assert went == {("issued", 1, c03.building_code), ("in_stock", 9, None)}


async def test_only_those_who_manage_a_store_change_it(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    c03 = await compound(client, town, platform)
    other = await make_compound(client, town.id, town.operator, code="C04")
    await known_to_logistics(platform, other.id)
    rice = await item(client, town, "rice", "kg")
    staff = await committee_staff(client, town, c03, "c03-staff")
    line = [{"item_id": rice, "quantity": 5}]
    # Committee staff keep their own compound's store...
    await receipt(client, staff, c03.id, line)
    # ...not another committee's (which they cannot see), nor the town warehouse.
    for holder_id, status in ((other.id, 404), (town.id, 403)):
        body = {"holder_id": str(holder_id), "source": "government", "lines": line}
        response = await client.post("/v1/stock/receipts", json=body, headers=staff)
        assert response.status_code == status, response.text
    # The catalogue is the town office's.
    body = {"town_id": str(town.id), "name": "eggs", "unit": "box"}
    assert (await client.post("/v1/items", json=body, headers=staff)).status_code == 403
    assert (await balance(client, staff, c03.id, rice))["on_hand"] == 5
    assert await balance(client, staff, other.id, rice) == {
        "on_hand": 0,
        "reserved": 0,
        "available": 0,
        "batches": [],
    }


async def test_two_reservations_of_the_last_stock_at_once_one_wins(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """Two plans reserve the last 60 kg (of 100) at the same moment, as two units of work;
    then two requests issue the last of it through the API at once."""
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    await receipt(client, h, c03.id, [{"item_id": rice, "quantity": 100}])
    runtime = platform.runtime("logistics")

    async def plan(n: int) -> str:
        async with runtime.uow(Principal.system()) as uow:
            try:
                await reserve(
                    uow,
                    holder_id=uuid.UUID(c03.id),
                    lines=[(uuid.UUID(rice), 60)],
                    reference=Reference(kind="plan", id=uuid.uuid4(), label=f"plan {n}"),
                )
            except Conflict as exc:
                return exc.detail
            await uow.commit()
            return "reserved"

    outcomes = await asyncio.gather(plan(1), plan(2))
    assert sorted(outcomes) == [
        "not enough stock: short by 20 kg of rice at compound C03",
        "reserved",
    ]
    after = await balance(client, h, c03.id, rice)
    assert (after["on_hand"], after["reserved"], after["available"]) == (100, 60, 40)
    held = (await client.get("/v1/stock/reservations", headers=h)).json()["items"]
    assert [(r["reference_label"], r["held"]) for r in held] in ([("plan 1", 60)], [("plan 2", 60)])

    requests = [await help_request(client, town, platform, c03, name) for name in ("甲", "乙")]

    def issue(request_id: str) -> dict[str, Any]:
        return {
            "holder_id": c03.id,
            "reference_id": request_id,
            "lines": [{"item_id": rice, "quantity": 30}],
        }

    answers = await asyncio.gather(
        client.post("/v1/stock/issues", json=issue(requests[0]), headers=h),
        client.post("/v1/stock/issues", json=issue(requests[1]), headers=h),
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    after = await balance(client, h, c03.id, rice)
    assert (after["on_hand"], after["reserved"], after["available"]) == (70, 60, 10)
    async with runtime.uow(Principal.system()) as uow:
        card = await uow.session.scalar(
            select(func.sum(Entry.quantity)).where(Entry.holder_id == uuid.UUID(c03.id))
        )
        on_hand = await uow.session.scalar(
            select(func.sum(Batch.on_hand)).where(Batch.holder_id == uuid.UUID(c03.id))
        )
    assert card == on_hand == 70_000


async def test_a_donation_is_traced_through_a_transfer_to_where_it_was_issued(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    oil = await item(client, town, "cooking oil", "piece")
    await receipt(
        client,
        h,
        town.id,
        [{"item_id": oil, "quantity": 100, "batch": "OIL-7"}],
        source="donation",
        donor="Golden Dragon Oils",
    )
    transfer = await post(
        client,
        "/v1/stock/transfers",
        {"to_holder_id": c03.id, "lines": [{"item_id": oil, "quantity": 30}]},
        h,
    )
    [line] = transfer["lines"]
    await post(
        client,
        f"/v1/stock/transfers/{transfer['id']}/receive",
        {"lines": [{"line_id": line["id"], "received": 28}]},
        h,
    )
    plan = Reference(kind="plan", id=uuid.uuid4(), label="April supply packages")
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        holder = uuid.UUID(c03.id)
        await reserve(uow, holder_id=holder, lines=[(uuid.UUID(oil), 10)], reference=plan)
        await issue_reserved(
            uow, holder_id=holder, reference=plan, building_id=uuid.UUID(c03.building_id)
        )
        await uow.commit()
    [donation] = (await client.get("/v1/donations", headers=h)).json()["items"]
    assert donation["holder"] == "the town warehouse"
    went = {
        (w["kind"], w["holder"], w["quantity"], w["reference_label"], w["building"])
        for w in donation["lines"][0]["went_to"]
    }
    assert went == {
        ("issued", "compound C03", 10, "April supply packages", "1"),
        ("in_stock", "compound C03", 18, None, None),
        ("in_stock", "the town warehouse", 70, None, None),
        ("lost_in_transit", "compound C03", 2, None, None),
    }


async def test_a_kit_is_reserved_as_its_items(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    oil = await item(client, town, "oil", "piece")
    body = {
        "town_id": str(town.id),
        "name": "supply package",
        "lines": [{"item_id": rice, "quantity": "5"}, {"item_id": oil, "quantity": 1}],
    }
    kit = await post(client, "/v1/kits", body, h)
    assert [(line["item"], line["quantity"]) for line in kit["lines"]] == [("oil", 1), ("rice", 5)]
    twice = {**body, "name": "double", "lines": [body["lines"][0], body["lines"][0]]}
    refused = await client.post("/v1/kits", json=twice, headers=h)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "lines"
    listed = (await client.get("/v1/kits", headers=h)).json()["items"]
    assert [k["name"] for k in listed] == ["supply package"]
    await receipt(
        client, h, c03.id, [{"item_id": rice, "quantity": 40}, {"item_id": oil, "quantity": 5}]
    )
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        lines = await expand(uow, kit_id=uuid.UUID(kit["id"]), count=3)
        plan = Reference(kind="plan", id=uuid.uuid4(), label="three households")
        await reserve(uow, holder_id=uuid.UUID(c03.id), lines=lines, reference=plan)
        await uow.commit()
    assert (await balance(client, h, c03.id, rice))["reserved"] == 15
    assert (await balance(client, h, c03.id, oil))["reserved"] == 3
    # Two more packages than there is oil for: refused, by how much.
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        lines = await expand(uow, kit_id=uuid.UUID(kit["id"]), count=4)
        other = Reference(kind="plan", id=uuid.uuid4())
        with pytest.raises(Conflict) as refusal:
            await reserve(uow, holder_id=uuid.UUID(c03.id), lines=lines, reference=other)
    assert refusal.value.detail == "not enough stock: short by 2 pieces of oil at compound C03"


async def test_a_receipt_resent_with_its_key_is_counted_once(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    body = {
        "holder_id": c03.id,
        "source": "government",
        "lines": [{"item_id": rice, "quantity": 50}],
    }
    keyed = {**h, "Idempotency-Key": "receipt-c03-0402"}
    first = await client.post("/v1/stock/receipts", json=body, headers=keyed)
    again = await client.post("/v1/stock/receipts", json=body, headers=keyed)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 50


async def test_a_volunteer_reads_no_stock_card_balance_reservation_or_donation(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    await receipt(
        client, h, c03.id, [{"item_id": rice, "quantity": 40}], source="donation", donor="A Co."
    )
    scope = Scope.of(
        ScopeKind.buildings,
        towns=[town.id],
        committees=[uuid.UUID(c03.committee_id)],
        compounds=[uuid.UUID(c03.id)],
        buildings=[uuid.UUID(c03.building_id)],
    )
    volunteer = headers_for(platform, Role.volunteer, scope, "volunteer-c03")
    leader = headers_for(platform, Role.building_leader, scope, "leader-c03")
    reads = (
        "/v1/stock/entries",
        "/v1/stock/balances",
        "/v1/stock/reservations",
        "/v1/stock/transfers",
        "/v1/donations",
    )
    for path in reads:
        refused = await client.get(path, headers=volunteer)
        assert refused.status_code == 403, f"{path}: {refused.text}"
        assert "volunteer" in refused.json()["detail"]
    # The building leader, who prints the pick lists, still reads the store.
    assert (await balance(client, leader, c03.id, rice))["on_hand"] == 40


async def test_a_transfer_line_received_twice_is_refused_naming_the_repeat(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    await receipt(client, h, town.id, [{"item_id": rice, "quantity": "60"}])
    transfer = await post(
        client,
        "/v1/stock/transfers",
        {"to_holder_id": c03.id, "lines": [{"item_id": rice, "quantity": 60}]},
        h,
    )
    [line] = transfer["lines"]
    twice = {
        "lines": [
            {"line_id": line["id"], "received": "55"},
            {"line_id": line["id"], "received": "50"},
        ]
    }
    refused = await client.post(
        f"/v1/stock/transfers/{transfer['id']}/receive", json=twice, headers=h
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "lines.1.line_id"
    # Nothing was received: the store holds none, and the transfer can still be received.
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 0
    once = {"lines": [{"line_id": line["id"], "received": "55"}]}
    received = await post(client, f"/v1/stock/transfers/{transfer['id']}/receive", once, h)
    assert received["lines"][0]["lost"] == 5
    # A count names its repeated batch the same way.
    [batch] = (await balance(client, h, c03.id, rice))["batches"]
    counted = {"batch_id": batch["batch_id"], "counted": "55"}
    body = {"holder_id": c03.id, "lines": [counted, counted]}
    recounted = await client.post("/v1/stock/counts", json=body, headers=h)
    assert recounted.status_code == 422, recounted.text
    assert recounted.json()["errors"][0]["field"] == "lines.1.batch_id"


async def test_goods_go_in_order_received_dispatched_then_received_at_the_store(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    now = datetime.now(UTC)
    line = [{"item_id": rice, "quantity": 60}]
    # Goods that have not arrived are not on the warehouse's card, so none can be sent on
    # before they came: a receipt stated for tomorrow is refused, naming its time.
    tomorrow = (now + timedelta(days=1)).isoformat()
    body = {"holder_id": str(town.id), "source": "government", "lines": line}
    early = await client.post(
        "/v1/stock/receipts", json={**body, "received_at": tomorrow}, headers=h
    )
    assert early.status_code == 422, early.text
    assert [e["field"] for e in early.json()["errors"]] == ["received_at"]
    assert (await balance(client, h, town.id, rice))["on_hand"] == 0
    sent = {"to_holder_id": c03.id, "lines": line}
    assert (await client.post("/v1/stock/transfers", json=sent, headers=h)).status_code == 409
    # Within the clocks' tolerance, or any time before, a receipt is taken as stated.
    await receipt(client, h, town.id, line, received_at=(now + timedelta(minutes=2)).isoformat())
    await receipt(client, h, town.id, line, received_at=(now - timedelta(days=2)).isoformat())
    transfer = await post(client, "/v1/stock/transfers", {**sent, "lines": line}, h)
    [dispatched] = transfer["lines"]
    url = f"/v1/stock/transfers/{transfer['id']}/receive"
    # More than was sent cannot arrive: the surplus is recorded as found, on its own.
    more = {"lines": [{"line_id": dispatched["id"], "received": "61"}]}
    refused = await client.post(url, json=more, headers=h)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["lines.0.received"]
    assert "found" in refused.json()["detail"]
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 0
    received = await post(client, url, {}, h)
    assert received["status"] == "received"
    assert received["received_at"] >= received["dispatched_at"]
    [batch] = (await balance(client, h, c03.id, rice))["batches"]
    found = {"batch_id": batch["batch_id"], "quantity": 1, "reason": "found"}
    await post(client, "/v1/stock/adjustments", {"holder_id": c03.id, "lines": [found]}, h)
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 61
    # Received once only; a transfer nobody dispatched cannot be received.
    assert (await client.post(url, json={}, headers=h)).status_code == 409
    nowhere = f"/v1/stock/transfers/{uuid.uuid4()}/receive"
    assert (await client.post(nowhere, json={}, headers=h)).status_code == 404


async def test_a_quantity_in_exponent_notation_is_refused_naming_its_field(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    for text in ("1e9", "1e1", "1E3", " 5", "+5", "5."):
        body = {
            "holder_id": c03.id,
            "source": "government",
            "lines": [{"item_id": rice, "quantity": text}],
        }
        refused = await client.post("/v1/stock/receipts", json=body, headers=h)
        assert refused.status_code == 422, f"{text!r}: {refused.text}"
        assert refused.json()["errors"][0]["field"] == "lines.0.quantity", refused.text
    # A count and an adjustment take the same text.
    count = {"holder_id": c03.id, "lines": [{"batch_id": str(uuid.uuid4()), "counted": "1e1"}]}
    refused = await client.post("/v1/stock/counts", json=count, headers=h)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "lines.0.counted"
    # Plain decimal text and numbers still go through.
    await receipt(client, h, c03.id, [{"item_id": rice, "quantity": "2.5"}])
    await receipt(client, h, c03.id, [{"item_id": rice, "quantity": 10}])
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 12.5


async def test_a_blank_item_or_kit_name_is_refused_naming_the_field(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    h = town.operator
    for name in ("   ", "\t \u3000"):
        body = {"town_id": str(town.id), "name": name, "unit": "kg"}
        refused = await client.post("/v1/items", json=body, headers=h)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "name"
    made = await post(
        client, "/v1/items", {"town_id": str(town.id), "name": " rice ", "unit": "kg"}, h
    )
    assert made["name"] == "rice"
    kit = {"town_id": str(town.id), "name": "  ", "lines": [{"item_id": made["id"], "quantity": 1}]}
    refused = await client.post("/v1/kits", json=kit, headers=h)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "name"


async def test_nothing_is_issued_for_a_cancelled_help_request(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """Goods recorded as issued for a request the committee cancelled would be traced to
    the donor as handed to a family that asked for nothing: 409 naming `reference_id`,
    nothing issued."""
    h = town.operator
    c03 = await compound(client, town, platform)
    formula = await item(client, town, "formula", "box")
    await receipt(client, h, c03.id, [{"item_id": formula, "quantity": 10}])
    request_id = await help_request(client, town, platform, c03)
    cancelled = await client.post(
        f"/v1/requests/{request_id}/cancel", json={"reason": "family left"}, headers=h
    )
    assert cancelled.status_code == 200, cancelled.text
    line = [{"item_id": formula, "quantity": 1}]
    body = {"holder_id": c03.id, "reference_id": request_id, "lines": line}
    refused = await client.post("/v1/stock/issues", json=body, headers=h)
    assert refused.status_code == 409, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["reference_id"]
    assert "cancelled" in refused.json()["detail"] and "family left" in refused.json()["detail"]
    assert (await balance(client, h, c03.id, formula))["on_hand"] == 10


async def test_a_donation_from_a_blank_donor_is_refused_naming_donor(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """Donations are accounted for to the donor: a donor of spaces only is nobody, and would
    stand in the register (and its export) as a blank line nobody can thank or trace."""
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    for donor in ("   ", "\t\u3000"):
        body = {
            "holder_id": c03.id,
            "source": "donation",
            "donor": donor,
            "lines": [{"item_id": rice, "quantity": 10}],
        }
        refused = await client.post("/v1/stock/receipts", json=body, headers=h)
        assert refused.status_code == 422, f"{donor!r}: {refused.text}"
        assert refused.json()["errors"][0]["field"] == "donor"
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 0
    # A donor's name is kept without the spaces around it.
    made = await receipt(
        client,
        h,
        c03.id,
        [{"item_id": rice, "quantity": 10}],
        source="donation",
        donor="  Riverside Rice Co. ",
    )
    assert made["donor"] == "Riverside Rice Co."


async def test_an_adjustment_naming_a_batch_of_another_item_is_refused_naming_item_id(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """A line that names a batch and an item says twice what it changes: when they disagree
    (the rice batch picked, oil meant) it is a 422 naming `lines.N.item_id`, and neither
    the rice nor the oil changes; when they agree it goes through."""
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    oil = await item(client, town, "oil", "piece")
    made = await receipt(client, h, c03.id, [{"item_id": rice, "quantity": 50}])
    rice_batch = made["entries"][0]["batch_id"]
    for reason, quantity in (("found", 5), ("damaged", -5)):
        body = {
            "holder_id": c03.id,
            "lines": [
                {"batch_id": rice_batch, "item_id": oil, "quantity": quantity, "reason": reason}
            ],
        }
        refused = await client.post("/v1/stock/adjustments", json=body, headers=h)
        assert refused.status_code == 422, f"{reason}: {refused.text}"
        assert refused.json()["errors"][0]["field"] == "lines.0.item_id", refused.text
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 50
    assert (await balance(client, h, c03.id, oil))["on_hand"] == 0
    same = {
        "holder_id": c03.id,
        "lines": [{"batch_id": rice_batch, "item_id": rice, "quantity": -5, "reason": "damaged"}],
    }
    await post(client, "/v1/stock/adjustments", same, h)
    assert (await balance(client, h, c03.id, rice))["on_hand"] == 45


async def test_portions_boxes_and_pieces_are_whole_everywhere_on_the_card(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """Half a tin of formula is not stock anybody can hand out: it split one household's tin
    over two batches when reserved. A portion, a box or a piece is counted whole on every
    way onto or off the card (receipt, kit, transfer and its arrival, adjustment, count,
    issue): a fraction is a 422 naming the line's field and nothing changes; kilograms and
    jin keep their decimals."""
    h = town.operator
    c03 = await compound(client, town, platform)
    formula = await item(client, town, "formula", "box", perishable=True)
    oil = await item(client, town, "oil", "piece")
    rice = await item(client, town, "rice", "kg")
    tin = {"item_id": formula, "expires_on": "2099-01-01"}

    async def refused(path: str, body: dict[str, Any], field: str) -> None:
        answer = await client.post(path, json=body, headers=h)
        assert answer.status_code == 422, f"{path}: {answer.text}"
        assert answer.json()["errors"][0]["field"] == field, answer.text
        assert "whole" in answer.json()["detail"], answer.text

    body = {"holder_id": str(town.id), "source": "government"}
    await refused(
        "/v1/stock/receipts",
        {**body, "lines": [{**tin, "quantity": 10}, {**tin, "quantity": "2.5"}]},
        "lines.1.quantity",
    )
    kit = {"town_id": str(town.id), "name": "package", "lines": [{"item_id": oil, "quantity": 0.5}]}
    await refused("/v1/kits", kit, "lines.0.quantity")
    # Whole ones, and rice by the decimal kilogram, go through.
    await receipt(client, h, town.id, [{**tin, "quantity": 10}, {"item_id": rice, "quantity": 2.5}])
    assert (await balance(client, h, town.id, formula))["on_hand"] == 10
    await refused(
        "/v1/stock/transfers",
        {"to_holder_id": c03.id, "lines": [{"item_id": formula, "quantity": 1.5}]},
        "lines.0.quantity",
    )
    sent = await post(
        client,
        "/v1/stock/transfers",
        {"to_holder_id": c03.id, "lines": [{"item_id": formula, "quantity": 4}]},
        h,
    )
    line = sent["lines"][0]["id"]
    await refused(
        f"/v1/stock/transfers/{sent['id']}/receive",
        {"lines": [{"line_id": line, "received": 3.5}]},
        "lines.0.received",
    )
    await post(client, f"/v1/stock/transfers/{sent['id']}/receive", {}, h)
    at_store = await balance(client, h, c03.id, formula)
    assert at_store["on_hand"] == 4
    batch_id = at_store["batches"][0]["batch_id"]
    await refused(
        "/v1/stock/adjustments",
        {
            "holder_id": c03.id,
            "lines": [{"batch_id": batch_id, "quantity": -0.5, "reason": "damaged"}],
        },
        "lines.0.quantity",
    )
    await refused(
        "/v1/stock/counts",
        {"holder_id": c03.id, "lines": [{"batch_id": batch_id, "counted": 3.5}]},
        "lines.0.counted",
    )
    request_id = await help_request(client, town, platform, c03)
    await refused(
        "/v1/stock/issues",
        {
            "holder_id": c03.id,
            "reference_id": request_id,
            "lines": [{"item_id": formula, "quantity": 0.5}],
        },
        "lines.0.quantity",
    )
    assert (await balance(client, h, c03.id, formula))["on_hand"] == 4
    assert (await balance(client, h, town.id, formula))["on_hand"] == 6


async def test_expired_goods_are_judged_by_the_town_office_s_date_not_utc_s(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """Formula that expired yesterday on the town office's calendar is not sent to a
    compound nor handed out, even while UTC's date is still yesterday (Shanghai before
    08:00); formula good until today there is, even while UTC's date has moved on."""
    h = town.operator
    c03 = await compound(client, town, platform)
    request_id = await help_request(client, town, platform, c03)
    # A town office whose date is not UTC's right now: east of it late in the UTC day, west
    # of it early.
    utc = datetime.now(UTC)
    east_or_west = "Pacific/Kiritimati" if utc.hour >= 11 else "Pacific/Pago_Pago"
    runtime = platform.runtime("logistics")
    runtime.settings = runtime.settings.model_copy(update={"time_zone": east_or_west})
    today = datetime.now(ZoneInfo(east_or_west)).date()
    assert today != utc.date()
    formula = await item(client, town, "formula", "box", perishable=True)

    def tins(quantity: int, expires_on: date) -> dict[str, Any]:
        return {"item_id": formula, "quantity": quantity, "expires_on": expires_on.isoformat()}

    # Received two days ago: one batch good until yesterday, one until today.
    lines = [tins(5, today - timedelta(days=1)), tins(3, today)]
    earlier = (utc - timedelta(days=2)).isoformat()
    with on_the_town_s_calendar(today - timedelta(days=2)):
        for holder in (town.id, c03.id):
            await receipt(client, h, holder, lines, received_at=earlier)

    too_many = {"to_holder_id": c03.id, "lines": [{"item_id": formula, "quantity": 4}]}
    short = await client.post("/v1/stock/transfers", json=too_many, headers=h)
    assert short.status_code == 409, short.text
    assert short.json()["errors"][0]["short"] == 1
    sent = await post(
        client,
        "/v1/stock/transfers",
        {"to_holder_id": c03.id, "lines": [{"item_id": formula, "quantity": 3}]},
        h,
    )
    assert [line["expires_on"] for line in sent["lines"]] == [today.isoformat()]

    issue = {
        "holder_id": c03.id,
        "reference_id": request_id,
        "lines": [{"item_id": formula, "quantity": 3}],
    }
    issued = await post(client, "/v1/stock/issues", issue, h)
    assert [line["expires_on"] for line in issued] == [today.isoformat()]
    refused = await client.post("/v1/stock/issues", json=issue, headers=h)
    assert refused.status_code == 409, refused.text


async def test_the_register_nets_a_donation_s_write_offs_against_what_was_found_again(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """Two sacks of a donor's rice written off as damaged, then counted back on the shelf:
    the register says the 100 kg are in stock, not in stock and written off too (102 kg of a
    100 kg donation). More than was donated coming to light is shown as found."""
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    made = await receipt(
        client,
        h,
        c03.id,
        [{"item_id": rice, "quantity": 100}],
        source="donation",
        donor="Riverside Rice Co.",
    )
    batch_id = made["entries"][0]["batch_id"]

    async def went() -> list[tuple[str, float]]:
        register = (await client.get("/v1/donations", headers=h)).json()["items"]
        [line] = register[0]["lines"]
        return sorted((w["kind"], w["quantity"]) for w in line["went_to"])

    damaged = [{"batch_id": batch_id, "quantity": -2, "reason": "damaged"}]
    await post(client, "/v1/stock/adjustments", {"holder_id": c03.id, "lines": damaged}, h)
    assert await went() == [("in_stock", 98), ("written_off", 2)]
    counted = [{"batch_id": batch_id, "counted": 100}]
    await post(client, "/v1/stock/counts", {"holder_id": c03.id, "lines": counted}, h)
    assert await went() == [("in_stock", 100)]
    more = [{"batch_id": batch_id, "quantity": 3, "reason": "found"}]
    await post(client, "/v1/stock/adjustments", {"holder_id": c03.id, "lines": more}, h)
    assert await went() == [("found", 3), ("in_stock", 103)]


async def test_a_balance_promises_no_expired_stock(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """Formula that expired yesterday is on the shelf but promised to nobody: the balance
    shows it as expired, not available, so an operator reading 'available' plans no more
    than a plan can take."""
    h = town.operator
    c03 = await compound(client, town, platform)
    formula = await item(client, town, "formula", "box", perishable=True)
    today = datetime.now(platform.runtime("logistics").settings.zone).date()
    lines = [
        {"item_id": formula, "quantity": 5, "expires_on": (today - timedelta(days=1)).isoformat()},
        {"item_id": formula, "quantity": 3, "expires_on": (today + timedelta(days=30)).isoformat()},
    ]
    earlier = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    with on_the_town_s_calendar(today - timedelta(days=2)):
        await receipt(client, h, c03.id, lines, received_at=earlier)

    shown = await balance(client, h, c03.id, formula)
    assert (shown["on_hand"], shown["reserved"], shown["available"], shown["expired"]) == (
        8,
        0,
        3,
        5,
    )
    assert [(b["expired"], b["available"]) for b in shown["batches"]] == [(True, 0), (False, 3)]
    request_id = await help_request(client, town, platform, c03)
    issue = {
        "holder_id": c03.id,
        "reference_id": request_id,
        "lines": [{"item_id": formula, "quantity": 4}],
    }
    short = await client.post("/v1/stock/issues", json=issue, headers=h)
    assert short.status_code == 409 and short.json()["errors"][0]["short"] == 1


async def test_a_register_larger_than_one_file_is_refused_not_cut_short(
    client: httpx.AsyncClient, town: Town, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A committee shows the export to its donors as the whole register: one cut short at
    the file's limit would hide donations. Over the limit it is refused naming holder_id,
    and exported store by store."""
    from services.logistics.donations import endpoints as donation_endpoints

    monkeypatch.setattr(donation_endpoints, "EXPORT_LIMIT", 2)
    h = town.operator
    c03 = await compound(client, town, platform)
    rice = await item(client, town, "rice", "kg")
    for n, holder in enumerate((c03.id, c03.id, town.id)):
        line = {"item_id": rice, "quantity": "10", "batch": f"D-{n}"}
        await receipt(client, h, holder, [line], source="donation", donor=f"Donor {n}")
    refused = await client.get("/v1/donations/export?format=csv", headers=h)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "holder_id"
    per_store = await client.get(
        "/v1/donations/export", params={"format": "csv", "holder_id": c03.id}, headers=h
    )
    assert per_store.status_code == 200, per_store.text
    rows = list(csv.DictReader(io.StringIO(per_store.content.decode("utf-8-sig"))))
    assert {r["donor"] for r in rows} == {"Donor 0", "Donor 1"}
