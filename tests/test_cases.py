"""Cases: contacts from the household and the unit by the town's policy, contacts added by
hand, the transfer queue and its overdue alarm, and who may see whom."""

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cordon.platform import Platform
from services.testing.app import TRANSFER_OVERDUE
from services.testing.models import Case, kernel
from shared.auth import Principal, Role, Scope, ScopeKind
from tests.conftest import Town
from tests.support import (
    committee_staff,
    eventually,
    headers_for,
    listening,
    make_compound,
    make_resident,
    of_type,
)
from tests.test_results import results_csv, upload
from tests.test_rounds import in_directory, schedule, tube


class Ward:
    """A compound sampled one person per tube: household 101 (王秀英, 李强, 李娜) and 102
    (赵敏) in unit 1, household 201 (陈刚) in unit 2; tubes S0001… in that order."""

    def __init__(self, compound: Any, round_id: str, people: list[str]) -> None:
        self.compound = compound
        self.round_id = round_id
        self.people = people
        self.case, self.spouse, self.child, self.neighbour, self.upstairs = people


@pytest.fixture
async def ward(client: httpx.AsyncClient, town: Town, platform: Platform, workers: None) -> Ward:
    compound = await make_compound(client, town.id, town.operator, code="W1")
    people = []
    for name, household, unit in (
        ("王秀英", "101", 0),
        ("李强", "101", 0),
        ("李娜", "101", 0),
        ("赵敏", "102", 0),
        ("陈刚", "201", 1),
    ):
        made = await make_resident(
            client, compound, town.operator, household=household, unit=unit, name=name
        )
        people.append(made["id"])
    await in_directory(platform, residents=5)
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [compound.id]}, pool_size=1)
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    singles = [tube(f"S000{n + 1}", [p]) for n, p in enumerate(people)]
    recorded = await client.post(
        f"/v1/rounds/{round_['id']}/tubes/batch", json={"tubes": singles}, headers=town.operator
    )
    assert recorded.json()["accepted"] == 5, recorded.text
    return Ward(compound, round_["id"], people)


async def confirm(client: httpx.AsyncClient, town: Town, *codes: str) -> None:
    response = await upload(client, town.operator, results_csv([(c, "positive") for c in codes]))
    assert response.status_code == 201, response.text


async def only_case(client: httpx.AsyncClient, headers: Any, **params: str) -> dict[str, Any]:
    [case] = (await client.get("/v1/cases", params=params, headers=headers)).json()["items"]
    return dict(case)


async def contacts_of(
    client: httpx.AsyncClient, town: Town, case_id: str
) -> dict[str, tuple[str, str]]:
    listed = await client.get(f"/v1/cases/{case_id}/contacts", headers=town.operator)
    assert listed.status_code == 200, listed.text
    return {c["resident_id"]: (c["kind"], c["quarantine_until"]) for c in listed.json()}


def days_after(moment: str, days: int) -> str:
    return (datetime.fromisoformat(moment) + timedelta(days=days)).date().isoformat()


async def test_a_case_lists_its_household_and_unit_by_the_towns_policy(
    client: httpx.AsyncClient, town: Town, ward: Ward, platform: Platform
) -> None:
    async with listening(platform, "testing.case.confirmed", "testing.results.recorded") as events:
        await confirm(client, town, "S0001")
        case = await only_case(client, town.operator)
        assert (case["resident_id"], case["source"]) == (ward.case, "single_tube")
        confirmed = case["confirmed_at"]
        assert case["transfer"]["status"] == "pending" and not case["transfer"]["overdue"]
        due = datetime.fromisoformat(case["transfer"]["due_at"])
        assert due - datetime.fromisoformat(confirmed) == timedelta(hours=12)
        assert await contacts_of(client, town, case["id"]) == {
            ward.spouse: ("close", days_after(confirmed, 10)),
            ward.child: ("close", days_after(confirmed, 10)),
            ward.neighbour: ("secondary", days_after(confirmed, 7)),
        }

        policy = {
            "close_contact_days": 14,
            "secondary_contact_days": 0,
            "unit_neighbours_are_secondary": False,
            "epidemic_free_days": 14,
            "transfer_within_hours": 6,
        }
        path = f"/v1/testing-policies/{town.id}"
        staff = await committee_staff(client, town, ward.compound, "staff-w1")
        assert (await client.put(path, json=policy, headers=staff)).status_code == 403
        assert (await client.get(path, headers=staff)).json()["close_contact_days"] == 10
        assert (await client.put(path, json=policy, headers=town.operator)).status_code == 200
        assert (await client.get(path, headers=staff)).json() == {**policy, "town_id": str(town.id)}

        await confirm(client, town, "S0002")
        second = await only_case(client, town.operator, resident_id=ward.spouse)
        assert await contacts_of(client, town, second["id"]) == {
            ward.child: ("close", days_after(second["confirmed_at"], 14))
        }
        due = datetime.fromisoformat(second["transfer"]["due_at"])
        assert due - datetime.fromisoformat(second["confirmed_at"]) == timedelta(hours=6)
        # The spouse's tube again changes nothing; the man upstairs lives alone in unit 2.
        await confirm(client, town, "S0002", "S0005")
        alone = await only_case(client, town.operator, resident_id=ward.upstairs)
        assert await contacts_of(client, town, alone["id"]) == {}

        async def announced() -> bool:
            return len(of_type(events, "testing.results.recorded")) == 3

        await eventually(announced, what="three results uploads on the bus")
    cases = of_type(events, "testing.case.confirmed")
    assert [c.payload["resident_id"] for c in cases] == [ward.case, ward.spouse, ward.upstairs]
    assert cases[0].compound_id == uuid.UUID(ward.compound.id)
    announced_contacts = {
        c["resident_id"]: (c["kind"], c["quarantine_until"]) for c in cases[0].payload["contacts"]
    }
    assert announced_contacts == await contacts_of(client, town, case["id"])


async def test_contacts_are_added_by_hand_for_residents_and_outsiders(
    client: httpx.AsyncClient, town: Town, ward: Ward
) -> None:
    await confirm(client, town, "S0001")
    case = await only_case(client, town.operator)
    path = f"/v1/cases/{case['id']}/contacts"
    upstairs = await client.post(
        path, json={"resident_id": ward.upstairs, "kind": "secondary"}, headers=town.operator
    )
    assert upstairs.status_code == 201, upstairs.text
    assert (upstairs.json()["source"], upstairs.json()["kind"]) == ("manual", "secondary")
    twice = await client.post(path, json={"resident_id": ward.upstairs}, headers=town.operator)
    assert twice.status_code == 409
    courier = await client.post(
        path + "?reveal=true",
        json={"name": "张伟", "phone": "139 1234 5678", "note": "courier at the gate"},
        headers=town.operator,
    )
    assert courier.status_code == 201, courier.text
    assert (courier.json()["name"], courier.json()["phone"]) == ("张伟", "+8613912345678")
    assert courier.json()["resident_id"] is None and courier.json()["kind"] == "close"
    assert courier.json()["quarantine_until"] == days_after(case["confirmed_at"], 10)
    again = await client.post(
        path, json={"name": "张伟", "phone": "13912345678"}, headers=town.operator
    )
    assert again.status_code == 409, again.text
    ended_before = await client.post(
        path,
        json={"name": "王芳", "quarantine_until": days_after(case["confirmed_at"], -3)},
        headers=town.operator,
    )
    assert ended_before.status_code == 422, ended_before.text
    assert ended_before.json()["errors"][0]["field"] == "quarantine_until"

    unknown = await client.post(
        path, json={"resident_id": str(uuid.uuid4())}, headers=town.operator
    )
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "resident_id"
    both = await client.post(
        path, json={"resident_id": ward.upstairs, "name": "x"}, headers=town.operator
    )
    assert both.status_code == 422
    bad_phone = await client.post(
        path, json={"name": "刘洋", "phone": "12345"}, headers=town.operator
    )
    assert bad_phone.status_code == 422 and bad_phone.json()["errors"][0]["field"] == "phone"
    itself = await client.post(path, json={"resident_id": ward.case}, headers=town.operator)
    assert itself.status_code == 422

    listed = await contacts_of(client, town, case["id"])
    assert set(listed) == {ward.spouse, ward.child, ward.neighbour, ward.upstairs, None}


async def test_transfers_follow_the_queue_and_overdue_is_raised_once(
    client: httpx.AsyncClient, town: Town, ward: Ward, platform: Platform
) -> None:
    await confirm(client, town, "S0001")
    case = await only_case(client, town.operator)
    path = f"/v1/cases/{case['id']}/transfer"
    early = await client.post(path, json={"status": "transferred"}, headers=town.operator)
    assert early.status_code == 409 and "schedule it first" in early.json()["detail"]
    vague = await client.post(path, json={"status": "scheduled"}, headers=town.operator)
    assert vague.status_code == 422
    plan = {
        "status": "scheduled",
        "destination": "Shelter hospital, hall 3",
        "scheduled_for": "2022-04-02T16:00:00+08:00",
    }
    scheduled = await client.post(path, json=plan, headers=town.operator)
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["transfer"]["destination"] == "Shelter hospital, hall 3"
    queue = await client.get("/v1/transfers?status=scheduled", headers=town.operator)
    assert [c["id"] for c in queue.json()["items"]] == [case["id"]]
    assert (await client.get("/v1/transfers?status=pending", headers=town.operator)).json()[
        "items"
    ] == []

    runtime = platform.runtime("testing")
    confirmed = datetime.fromisoformat(case["confirmed_at"])
    async with listening(
        platform, "testing.transfer.overdue", "testing.results.recorded"
    ) as events:
        await runtime.tick(TRANSFER_OVERDUE, now=confirmed + timedelta(hours=11))
        await asyncio.gather(
            runtime.tick(TRANSFER_OVERDUE, now=confirmed + timedelta(hours=13)),
            runtime.tick(TRANSFER_OVERDUE, now=confirmed + timedelta(hours=13)),
        )
        await runtime.tick(TRANSFER_OVERDUE, now=confirmed + timedelta(hours=14))
        # A later event on the same queue: once it and the alarm are here, a second alarm
        # would be too (the alarm and the upload's event are not of one aggregate: their
        # order on the queue is not for the test to assume; a full run saw the upload first).
        sentinel = await upload(client, town.operator, results_csv([("S0005", "negative")]))
        assert sentinel.status_code == 201

        async def arrived() -> bool:
            return bool(
                of_type(events, "testing.results.recorded")
                and of_type(events, "testing.transfer.overdue")
            )

        await eventually(arrived, what="the sentinel upload and the alarm on the bus")
    [overdue] = of_type(events, "testing.transfer.overdue")
    assert overdue.payload["case_id"] == case["id"] and overdue.payload["status"] == "scheduled"
    async with runtime.uow(Principal.system()) as uow:
        marked = await uow.session.scalar(select(Case.overdue_reported_at))
    assert marked == confirmed + timedelta(hours=13)

    done = await client.post(path, json={"status": "transferred"}, headers=town.operator)
    assert done.status_code == 200 and done.json()["transfer"]["transferred_at"]
    back = await client.post(path, json=plan, headers=town.operator)
    assert back.status_code == 409
    transferred = await client.get("/v1/transfers?status=transferred", headers=town.operator)
    assert len(transferred.json()["items"]) == 1
    assert (await client.get("/v1/transfers?overdue=true", headers=town.operator)).json()[
        "items"
    ] == []


async def test_identities_are_masked_revealed_with_a_log_and_hidden_from_volunteers(
    client: httpx.AsyncClient, town: Town, ward: Ward, platform: Platform
) -> None:
    await confirm(client, town, "S0001")
    masked = await only_case(client, town.operator)
    assert masked["name"] == "王**" and "****" in masked["phone"]
    assert masked["document_number"].count("*") >= 8
    revealed = await only_case(client, town.operator, reveal="true")
    assert (revealed["name"], revealed["phone"]) == ("王秀英", "+8613812345678")
    assert "*" not in revealed["document_number"]
    contacts = await client.get(
        f"/v1/cases/{masked['id']}/contacts?reveal=true", headers=town.operator
    )
    assert {c["name"] for c in contacts.json()} == {"李强", "李娜", "赵敏"}
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        logged = (
            await uow.session.execute(
                select(kernel.access_log.c.resource, kernel.access_log.c.record_ids)
            )
        ).all()
    assert ("cases", [masked["id"]]) in [(r.resource, r.record_ids) for r in logged]
    assert "contacts" in {r.resource for r in logged}

    place = {"towns": [town.id], "compounds": [uuid.UUID(ward.compound.id)]}
    volunteer = headers_for(
        platform, Role.volunteer, Scope.of(ScopeKind.compounds, **place), "volunteer-1"
    )
    seen = await only_case(client, volunteer)
    assert (seen["name"], seen["phone"], seen["document_number"]) == (None, None, None)
    assert (await client.get("/v1/cases?reveal=true", headers=volunteer)).status_code == 403
    leader = headers_for(
        platform,
        Role.building_leader,
        Scope.of(ScopeKind.buildings, buildings=[uuid.UUID(ward.compound.building_id)], **place),
        "leader-1",
    )
    assert (await only_case(client, leader))["name"] == "王**"
    assert (await client.get("/v1/cases?reveal=true", headers=leader)).status_code == 403


async def test_another_committees_staff_see_no_cases_contacts_or_results(
    client: httpx.AsyncClient, town: Town, ward: Ward
) -> None:
    await confirm(client, town, "S0001")
    case = await only_case(client, town.operator)
    other = await make_compound(client, town.id, town.operator, code="W2")
    outsider = await committee_staff(client, town, other, "staff-w2")
    insider = await committee_staff(client, town, ward.compound, "staff-w1")
    assert (await only_case(client, insider))["id"] == case["id"]
    for path in (
        "/v1/cases",
        "/v1/transfers",
        "/v1/tasks",
    ):
        listed = await client.get(path, headers=outsider)
        assert listed.status_code == 200 and listed.json()["items"] == [], path
    for path in (
        f"/v1/cases/{case['id']}",
        f"/v1/cases/{case['id']}/contacts",
        "/v1/tubes/S0001",
        # A round they do not see: not found, as its other endpoints answer.
        f"/v1/results?round_id={ward.round_id}",
    ):
        assert (await client.get(path, headers=outsider)).status_code == 404, path
    contact = await client.post(
        f"/v1/cases/{case['id']}/contacts", json={"name": "x"}, headers=outsider
    )
    assert contact.status_code == 404
    moved = await client.post(
        f"/v1/cases/{case['id']}/transfer", json={"status": "pending"}, headers=outsider
    )
    assert moved.status_code == 404


async def test_counts_per_compound_match_the_lists_behind_them_in_scope(
    client: httpx.AsyncClient, town: Town, ward: Ward, platform: Platform
) -> None:
    await confirm(client, town, "S0001", "S0005")
    cases = (await client.get("/v1/cases", headers=town.operator)).json()["items"]
    first = min(cases, key=lambda c: c["confirmed_at"])
    plan = {"status": "scheduled", "destination": "Hall 3", "scheduled_for": first["confirmed_at"]}
    moved = await client.post(f"/v1/cases/{first['id']}/transfer", json=plan, headers=town.operator)
    assert moved.status_code == 200, moved.text
    since = datetime.fromisoformat(first["confirmed_at"]) + timedelta(microseconds=1)
    params = {"since": since.isoformat()}
    counted = await client.get("/v1/cases/counts", params=params, headers=town.operator)
    assert counted.status_code == 200, counted.text
    [row] = counted.json()
    later = await client.get(
        "/v1/cases", params={"confirmed_since": since.isoformat()}, headers=town.operator
    )
    assert row["compound_id"] == ward.compound.id
    assert (row["cases"], row["cases_since"]) == (2, len(later.json()["items"]))
    assert (row["transfers_pending"], row["transfers_scheduled"]) == (1, 1)
    overdue = (await client.get("/v1/transfers?overdue=true", headers=town.operator)).json()
    assert row["transfers_overdue"] == len(overdue["items"])

    naive = await client.get(
        "/v1/cases/counts", params={"since": "2022-04-02T00:00:00"}, headers=town.operator
    )
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "query.since"
    other = await make_compound(client, town.id, town.operator, code="W2")
    outsider = await committee_staff(client, town, other, "staff-w2")
    hidden = await client.get("/v1/cases/counts", params=params, headers=outsider)
    assert hidden.status_code == 200 and hidden.json() == []


async def test_a_blank_contact_name_or_transfer_destination_is_refused(
    client: httpx.AsyncClient, town: Town, ward: Ward
) -> None:
    """An outsider named by spaces only, or a transfer to a destination of spaces, is a 422
    naming the field, not a contact nobody can call back or a transfer to nowhere."""
    await confirm(client, town, "S0001")
    case = await only_case(client, town.operator)
    contacts = f"/v1/cases/{case['id']}/contacts"
    nameless = await client.post(
        contacts, json={"name": "   ", "phone": "13912345678"}, headers=town.operator
    )
    assert nameless.status_code == 422, nameless.text
    assert nameless.json()["errors"][0]["field"] == "name"
    plan = {"status": "scheduled", "destination": "  ", "scheduled_for": "2022-04-02T16:00:00Z"}
    nowhere = await client.post(
        f"/v1/cases/{case['id']}/transfer", json=plan, headers=town.operator
    )
    assert nowhere.status_code == 422, nowhere.text
    assert nowhere.json()["errors"][0]["field"] == "destination"
    assert (await only_case(client, town.operator))["transfer"]["status"] == "pending"


def _times(value: Any) -> Iterator[str]:
    """Every string of a payload that reads as a date and time (not a date alone)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _times(item)
    elif isinstance(value, list):
        for item in value:
            yield from _times(item)
    elif isinstance(value, str) and len(value) > 10 and value[:4].isdigit() and value[10] == "T":
        with contextlib.suppress(ValueError):
            datetime.fromisoformat(value)
            yield value


async def test_every_event_a_case_sets_off_carries_its_times_in_utc(
    client: httpx.AsyncClient, town: Town, ward: Ward, platform: Platform
) -> None:
    """A lab's result at +08:00 becomes a case, a seal, disinfection and messages: every
    event the services publish on the way states its times in UTC (``Z``), so no consumer
    has to guess a clock."""
    async with listening(platform, "#") as events:
        await confirm(client, town, "S0001")

        async def spread() -> bool:
            return {"testing", "registry", "logistics"} <= {e.producer for e in events}

        await eventually(spread, what="the case's events from testing, registry and logistics")
        await asyncio.sleep(1)
    published = [(e.type, t) for e in events for t in [*_times(e.payload), e.occurred_at]]
    assert {e.type for e in events} >= {"testing.case.confirmed", "registry.zone.changed"}
    assert [(kind, t) for kind, t in published if not str(t).endswith("Z") and not _is_utc(t)] == []


def _is_utc(moment: Any) -> bool:
    return isinstance(moment, datetime) and moment.utcoffset() == timedelta(0)
