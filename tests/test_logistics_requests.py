"""Help requests and errands, from a building leader's phone to a volunteer's: priority from
the resident's tags, assignment by suggestion, the states and their refusals, overdue and
escalation, recurring dialysis trips made once by racing workers, medicine-run cards, and
what a volunteer may see."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from cordon.platform import Platform
from services.logistics.app import CARD_OVERDUE, RECURRING_REQUESTS, REQUEST_OVERDUE
from services.logistics.models import (
    HelpRequest,
    Recurrence,
    RequestEscalation,
    directory,
    kernel,
)
from services.logistics.requests import endpoints as request_endpoints
from services.logistics.requests import service as request_service
from shared.auth import Principal
from shared.uow import UnitOfWork
from tests.conftest import Town
from tests.support import (
    Compound,
    account,
    answered_as_first,
    commits_writing,
    committee_staff,
    eventually,
    listening,
    make_compound,
    make_resident,
    of_type,
    post,
)

HOSPITAL = "Town People's Hospital"


@dataclass
class Area:
    """Compound C1: household 101 (a mother, 王秀英, and her infant), 102 (陈刚, dialysis)
    in unit 1; two volunteers on building 1, one whose availability is unreadable, and one
    on another compound; a building leader for building 1; all in the logistics directory."""

    compound: Compound
    mother: str
    infant: str
    patient: str
    helpers: list[str]
    night_owl: str
    outsider: str
    grid_id: str
    leader: dict[str, str]


async def _count(platform: Platform, model: Any) -> int:
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def _volunteer(
    client: httpx.AsyncClient, town: Town, compound: Compound, name: str, **fields: Any
) -> str:
    body = {"compound_id": compound.id, "name": name, "kind": "service", **fields}
    person = await post(client, "/v1/volunteers", body, town.operator)
    assignment = {
        "person_kind": "volunteer",
        "person_id": person["id"],
        "building_id": compound.building_id,
    }
    await post(client, "/v1/assignments", assignment, town.operator)
    return str(person["id"])


@pytest.fixture
async def area(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> AsyncIterator[Area]:
    h = town.operator
    compound = await make_compound(client, town.id, h, code="C1")
    other = await make_compound(client, town.id, h, code="C2")
    mother = await make_resident(client, compound, h, name="王秀英", tags=["pregnant"])
    infant = await make_resident(client, compound, h, name="李小宝", tags=["infant"], phone=None)
    patient = await make_resident(
        client, compound, h, household="102", name="陈刚", tags=["dialysis"], phone="13912345678"
    )
    helpers = [
        await _volunteer(client, town, compound, "周师傅", skills=["driving"]),
        await _volunteer(client, town, compound, "郑同学", availability=""),
    ]
    night_owl = await _volunteer(client, town, compound, "吴夜班", availability="nights only")
    outsider = await _volunteer(client, town, other, "钱外区")
    grid = await post(
        client,
        "/v1/grids",
        {
            "town_id": str(town.id),
            "code": "G1",
            "name": "Grid 1",
            "building_ids": [compound.building_id],
        },
        h,
    )
    staff = {"compound_id": compound.id, "name": "楼组长老张", "title": "building leader"}
    leader_person = await post(client, "/v1/staff", staff, h)
    await post(
        client,
        "/v1/assignments",
        {
            "person_kind": "staff",
            "person_id": leader_person["id"],
            "building_id": compound.building_id,
        },
        h,
    )
    leader = await account(
        client,
        town,
        username="leader-c1",
        role="building_leader",
        person_kind="staff",
        person_id=leader_person["id"],
    )

    async def arrived() -> bool:
        return (
            await _count(platform, directory.models.Resident) == 3
            and await _count(platform, directory.models.Assignment) == 5
            and await _count(platform, directory.models.GridBuilding) == 1
        )

    await eventually(arrived, what="residents, volunteers and the grid in logistics")
    yield Area(
        compound,
        mother["id"],
        infant["id"],
        patient["id"],
        helpers,
        night_owl,
        outsider,
        grid["id"],
        leader,
    )


async def volunteer_signed_in(
    client: httpx.AsyncClient, town: Town, person_id: str, username: str
) -> dict[str, str]:
    return await account(
        client,
        town,
        username=username,
        role="volunteer",
        person_kind="volunteer",
        person_id=person_id,
    )


async def ask(
    client: httpx.AsyncClient, headers: dict[str, str], resident_id: str, kind: str, **more: Any
) -> dict[str, Any]:
    body = {"resident_id": resident_id, "kind": kind, "details": f"{kind} please", **more}
    return dict(await post(client, "/v1/requests", body, headers))


async def act(
    client: httpx.AsyncClient, headers: dict[str, str], request_id: str, action: str, **body: Any
) -> httpx.Response:
    return await client.post(f"/v1/requests/{request_id}/{action}", json=body, headers=headers)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_an_infants_formula_is_urgent_suggested_assigned_and_closed_inside_its_hour(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    leader = area.leader
    # Groceries for the dialysis patient's household keep the first helper busy.
    groceries = await ask(client, leader, area.patient, "groceries")
    assert groceries["priority"] == "high"  # normal, raised by dialysis, capped at high
    busy = await act(client, leader, groceries["id"], "assign", volunteer_id=area.helpers[0])
    assert busy.status_code == 200, busy.text

    async with listening(platform, "logistics.request.#") as events:
        formula = await client.post(
            "/v1/requests",
            json={"resident_id": area.mother, "kind": "baby_supplies", "details": "formula"},
            headers={**leader, "Idempotency-Key": "formula-1"},
        )
        assert formula.status_code == 201, formula.text
        request = formula.json()
        again = await client.post(
            "/v1/requests",
            json={"resident_id": area.mother, "kind": "baby_supplies", "details": "formula"},
            headers={**leader, "Idempotency-Key": "formula-1"},
        )
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == request["id"]
        assert request["priority"] == "urgent" and request["status"] == "open"
        assert at(request["due_at"]) - at(request["created_at"]) == timedelta(hours=1)
        assert 3500 < request["seconds_left"] <= 3600

        suggested = await client.get(f"/v1/requests/{request['id']}/suggestions", headers=leader)
        assert suggested.status_code == 200, suggested.text
        ranked = [(s["name"], s["open_errands"]) for s in suggested.json()]
        # The night owl's availability says no time we can read, the outsider works on
        # another compound; the busy helper comes last.
        assert ranked == [("郑同学", 0), ("周师傅", 1)]
        chosen = suggested.json()[0]["id"]
        assigned = await act(client, leader, request["id"], "assign", volunteer_id=chosen)
        assert assigned.status_code == 200, assigned.text

        helper = await volunteer_signed_in(client, town, chosen, "helper-zheng")
        for action in ("start", "done"):
            moved = await act(client, helper, request["id"], action)
            assert moved.status_code == 200, moved.text
        closed = await act(client, leader, request["id"], "confirm")
        assert closed.status_code == 200, closed.text
        done = closed.json()
        assert done["status"] == "closed" and done["closed_by"] == "leader-c1"
        assert at(done["done_at"]) <= at(done["due_at"]) and not done["overdue"]

        async def all_five() -> bool:
            mine = [e for e in events if e.payload["request_id"] == request["id"]]
            return len(mine) == 5

        await eventually(all_five, what="five events of the formula request")
    mine = [e for e in events if e.payload["request_id"] == request["id"]]
    assert [(e.type, e.payload["revision"]) for e in mine] == [
        ("logistics.request.created", 1),
        ("logistics.request.assigned", 2),
        ("logistics.request.started", 3),
        ("logistics.request.done", 4),
        ("logistics.request.closed", 5),
    ]
    assert mine[1].payload["assignee_id"] == chosen


async def test_volunteers_are_suggested_by_availability_as_people_write_it(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    written = {
        "any time": True,
        "全天": True,
        "00:00-24:00": True,
        "mornings": True,
        "weekdays 08:00-12:00": True,
        "evenings and weekends": False,
        "晚上": False,
        "看情况": False,
    }
    names = {
        await _volunteer(client, town, area.compound, f"志愿者{n}", availability=text): text
        for n, text in enumerate(written)
    }

    async def arrived() -> bool:
        return await _count(platform, directory.models.Assignment) == 5 + len(written)

    await eventually(arrived, what="the new volunteers in logistics")
    request = await ask(client, area.leader, area.mother, "baby_supplies")
    # A Monday at ten in the morning, town time.
    suggested = await client.get(
        f"/v1/requests/{request['id']}/suggestions",
        params={"at": "2022-04-04T10:00:00+08:00"},
        headers=area.leader,
    )
    assert suggested.status_code == 200, suggested.text
    ids = {s["id"] for s in suggested.json()}
    assert {names[i] for i in ids if i in names} == {t for t, yes in written.items() if yes}


async def test_a_creations_answer_is_what_reading_the_request_answers(
    client: httpx.AsyncClient, town: Town, area: Area
) -> None:
    """The create builds its answer from the one statement that finds the resident (their
    building, unit and room as the caller's scope shows them, their town's targets): it is the
    answer a read of the request gives, masked alike, for a building leader and the town."""
    for headers in (area.leader, town.operator):
        for reveal in ("", "?reveal=true"):
            created = await client.post(
                f"/v1/requests{reveal}",
                json={"resident_id": area.patient, "kind": "groceries", "details": "rice"},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            answer = created.json()
            read = await client.get(f"/v1/requests/{answer['id']}{reveal}", headers=headers)
            assert read.status_code == 200, read.text
            again = read.json()
            assert abs(again.pop("seconds_left") - answer.pop("seconds_left")) <= 2
            assert again == answer
            assert answer["address"] == f"building {area.compound.building_code}, unit 1, room 102"
            assert answer["name"] == "陈刚"
            assert answer["phone"] == ("+8613912345678" if reveal else "+86139****5678")


async def test_creations_sent_together_without_a_key_share_commits_each_with_its_own_answer(
    client: httpx.AsyncClient, area: Area, platform: Platform
) -> None:
    """A burst of creations without an Idempotency-Key is written in fewer transactions than
    requests (group commit); each is still checked and answered on its own (an unknown
    resident among them gets its 404), and its event carries its own correlation id."""
    residents = [area.mother, area.infant, area.patient]
    kinds = ["groceries", "baby_supplies", "other"]
    sent = [
        {"resident_id": residents[n % 3], "kind": kinds[n % 3], "details": f"errand {n}"}
        for n in range(12)
    ]
    unknown = {"resident_id": str(uuid.uuid4()), "kind": "groceries"}

    async def send(n: int, body: dict[str, Any]) -> httpx.Response:
        headers = {**area.leader, "X-Correlation-ID": f"together-{n}"}
        return await client.post("/v1/requests", json=body, headers=headers)

    with commits_writing(platform, "logistics", "help_requests") as transactions:
        async with listening(platform, "logistics.request.created") as events:
            *created, missing = await asyncio.gather(
                *(send(n, body) for n, body in enumerate([*sent, unknown]))
            )
            assert missing.status_code == 404, missing.text
            assert missing.json()["errors"][0]["field"] == "resident_id"
            ids = []
            for body, response in zip(sent, created, strict=True):
                assert response.status_code == 201, response.text
                got = response.json()
                assert (got["resident_id"], got["kind"], got["details"]) == (
                    body["resident_id"],
                    body["kind"],
                    body["details"],
                )
                assert got["created_by"] == "leader-c1" and got["phone"] != "+8613912345678"
                read = await client.get(f"/v1/requests/{got['id']}", headers=area.leader)
                assert read.json()["details"] == body["details"]
                ids.append(got["id"])
            # The mother's formula is urgent (her household has an infant), as alone.
            assert created[1].json()["priority"] == "urgent"

            async def all_twelve() -> bool:
                return len({e.payload["request_id"] for e in events}) == 12

            await eventually(all_twelve, what="twelve created events")
    correlation = {e.payload["request_id"]: e.correlation_id for e in events}
    assert [correlation[i] for i in ids] == [f"together-{n}" for n in range(12)]
    assert len(set(ids)) == 12 and await _count(platform, HelpRequest) == 12
    assert 1 <= transactions[0] < 12


async def test_keyed_creations_sent_together_share_commits_and_each_resend_gets_its_first_answer(
    client: httpx.AsyncClient, area: Area, platform: Platform
) -> None:
    """Phones on a weak network send a key with each creation and resend it. A burst of keyed
    creations is written in fewer transactions than requests, each answer stored with its
    group; a key sent twice within the burst, and every key resent afterwards, gets the
    first answer, and nothing is entered twice. The same key with another body is refused."""
    residents = [area.mother, area.infant, area.patient]
    sent = [
        {"resident_id": residents[n % 3], "kind": "groceries", "details": f"keyed {n}"}
        for n in range(12)
    ]

    async def send(n: int, body: dict[str, Any]) -> httpx.Response:
        headers = {**area.leader, "Idempotency-Key": f"phone-{n}"}
        return await client.post("/v1/requests", json=body, headers=headers)

    with commits_writing(platform, "logistics", "help_requests") as transactions:
        *first, twice = await asyncio.gather(
            *(send(n, body) for n, body in enumerate(sent)), send(0, sent[0])
        )
    assert [r.status_code for r in [*first, twice]] == [201] * 13, [r.text for r in first]
    assert [r.json()["details"] for r in first] == [body["details"] for body in sent]
    assert twice.json() == first[0].json()
    assert 1 <= transactions[0] < 12
    assert await _count(platform, HelpRequest) == 12
    again = await asyncio.gather(*(send(n, body) for n, body in enumerate(sent)))
    answered_as_first(first, again)
    assert await _count(platform, HelpRequest) == 12
    other = await send(3, {**sent[3], "details": "something else"})
    assert other.status_code == 409 and "Idempotency-Key" in other.text


async def test_a_group_whose_commit_fails_fails_each_creation_and_enters_none_again(
    client: httpx.AsyncClient, area: Area, platform: Platform
) -> None:
    """A group's COMMIT that went through but whose answer was lost: nobody can tell, so each
    creation of the group fails as it would alone, and none is entered again on its own."""
    runtime = platform.runtime("logistics")

    def losing_the_commits_answer(principal: Principal) -> UnitOfWork:
        uow = runtime.uow(principal)
        commit = uow.commit

        async def committed_then_lost() -> None:
            await commit()
            raise ConnectionResetError("the answer to COMMIT was lost")

        uow.commit = committed_then_lost  # type: ignore[method-assign]
        return uow

    request_endpoints._desks[runtime] = request_service.RequestDesk(
        losing_the_commits_answer, answers=runtime.spec.kernel.idempotency
    )
    try:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/requests",
                    json={"resident_id": area.patient, "kind": "other", "details": f"n{n}"},
                    headers=area.leader,
                )
                for n in range(6)
            )
        )
    finally:
        del request_endpoints._desks[runtime]
    assert [a.status_code for a in answers] == [500] * 6
    assert await _count(platform, HelpRequest) == 6


async def test_an_overdue_request_is_raised_then_escalated_twice_each_once(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    path = f"/v1/request-settings/{town.id}"
    targets = {"urgent_minutes": 30, "high_minutes": 120, "normal_minutes": 600}
    staff = await committee_staff(client, town, area.compound, "staff-c1")
    assert (await client.put(path, json=targets, headers=staff)).status_code == 403
    shrinking = {**targets, "high_minutes": 20}
    assert (await client.put(path, json=shrinking, headers=town.operator)).status_code == 422
    saved = await client.put(
        path, json={**targets, "escalate_after_minutes": 45}, headers=town.operator
    )
    assert saved.status_code == 200, saved.text
    assert (await client.get(path, headers=staff)).json()["high_minutes"] == 120

    request = await ask(client, staff, area.patient, "groceries")
    due = at(request["due_at"])
    assert due - at(request["created_at"]) == timedelta(minutes=120)
    runtime = platform.runtime("logistics")

    async def tick(after: timedelta, times: int = 1) -> None:
        await asyncio.gather(
            *(runtime.tick(REQUEST_OVERDUE, now=due + after) for _ in range(times))
        )

    async with listening(platform, "logistics.request.overdue") as events:
        await tick(-timedelta(minutes=1))
        await tick(timedelta(minutes=1), times=2)
        await tick(timedelta(minutes=30), times=2)
        await tick(timedelta(minutes=46), times=2)
        await tick(timedelta(minutes=80))
        await tick(timedelta(minutes=91), times=2)
        await tick(timedelta(hours=9), times=2)

        async def three() -> bool:
            return len(events) >= 3

        await eventually(three, what="three escalations")
        await asyncio.sleep(0.3)
    levels = [(e.payload["level"], e.payload["escalated_to"]) for e in events]
    assert levels == [(1, "compound"), (2, "grid_leader"), (3, "town_operator")]
    assert events[1].payload["grid_ids"] == [area.grid_id]
    assert [e.payload["revision"] for e in events] == [2, 3, 4]
    async with runtime.uow(Principal.system()) as uow:
        recorded = (
            await uow.session.execute(
                select(RequestEscalation.level, RequestEscalation.at).order_by(
                    RequestEscalation.level
                )
            )
        ).all()
    assert [(level, when - due) for level, when in recorded] == [
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=46)),
        (3, timedelta(minutes=91)),
    ]
    shown = (await client.get(f"/v1/requests/{request['id']}", headers=staff)).json()
    assert (shown["escalation_level"], shown["revision"]) == (3, 4)

    # Done in time, nothing is raised.
    quick = await ask(client, staff, area.mother, "other")
    await act(client, staff, quick["id"], "assign", team="errands")
    await act(client, staff, quick["id"], "start")
    assert (await act(client, staff, quick["id"], "done")).status_code == 200
    await runtime.tick(REQUEST_OVERDUE, now=at(quick["due_at"]) + timedelta(hours=5))
    async with runtime.uow(Principal.system()) as uow:
        row = await uow.session.get(HelpRequest, uuid.UUID(quick["id"]))
        assert row is not None and row.escalation_level == 0


def dialysis(area: Area, **changes: Any) -> dict[str, Any]:
    """A dialysis patient's recurring trips, Monday, Wednesday and Friday at 07:30."""
    return {
        "resident_id": area.patient,
        "kind": "medical_transport",
        "reason": "dialysis",
        "weekdays": ["mon", "wed", "fri"],
        "at": "07:30",
        "starts_on": "2026-12-07",
        "hospital": "Dialysis centre",
        **changes,
    }


async def test_a_dialysis_patients_monday_wednesday_friday_trips_appear_once_each(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    body = dialysis(area, weekdays=["fri", "mon", "wed"])
    recurrence = await post(client, "/v1/recurring-requests", body, area.leader)
    assert recurrence["weekdays"] == ["mon", "wed", "fri"]
    runtime = platform.runtime("logistics")
    # From Sunday 6 December to the next Sunday, local time (+08:00), every 90 minutes,
    # each time by two worker replicas at once.
    start = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
    async with listening(platform, "logistics.request.created") as events:
        for step in range(7 * 16 + 1):
            now = start + timedelta(minutes=90 * step)
            await asyncio.gather(
                runtime.tick(RECURRING_REQUESTS, now=now),
                runtime.tick(RECURRING_REQUESTS, now=now),
            )

        async def three() -> bool:
            return len(events) >= 3

        await eventually(three, what="three occurrences announced")
        await asyncio.sleep(0.3)
    listed = await client.get(f"/v1/requests?resident_id={area.patient}", headers=area.leader)
    trips = [r for r in listed.json()["items"] if r["recurrence_id"] == recurrence["id"]]
    local = [at(r["due_at"]).astimezone(timezone(timedelta(hours=8))) for r in trips]
    assert sorted(d.strftime("%a %d %H:%M") for d in local) == [
        "Fri 11 07:30",
        "Mon 07 07:30",
        "Wed 09 07:30",
    ]
    assert {r["priority"] for r in trips} == {"urgent"}  # transport, raised by dialysis
    assert sorted(e.payload["occurs_on"] for e in events) == [
        "2026-12-07",
        "2026-12-09",
        "2026-12-11",
    ]
    # Each appeared its lead time (2 h) before the trip, at the first tick past that.
    for trip in trips:
        lead = at(trip["due_at"]) - at(trip["created_at"])
        assert timedelta(minutes=30) < lead <= timedelta(hours=2)

    stopped = await client.post(
        f"/v1/recurring-requests/{recurrence['id']}/stop", headers=area.leader
    )
    assert stopped.status_code == 200 and not stopped.json()["active"]
    await runtime.tick(RECURRING_REQUESTS, now=datetime(2026, 12, 13, 23, 0, tzinfo=UTC))
    async with runtime.uow(Principal.system()) as uow:
        count = await uow.session.scalar(
            select(func.count()).where(HelpRequest.recurrence_id.is_not(None))
        )
    assert count == 3


async def test_a_series_past_its_last_day_shows_ended_and_makes_no_more_trips(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    """Once its ``ends_on`` has passed on the town office's calendar a series is over: it
    shows ``ended``, not ``active`` (it did), makes no trip of the day any more, and there is
    nothing left to stop. One ending today still runs."""
    runtime = platform.runtime("logistics")
    today = runtime.settings.today()
    body = dialysis(
        area,
        weekdays=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        starts_on=str(today - timedelta(days=14)),
        ends_on=str(today - timedelta(days=1)),
    )
    url = "/v1/recurring-requests"
    # Entered while it ran (a series already over is refused); its last day has since passed.
    over = await post(client, url, {**body, "ends_on": str(today)}, area.leader)
    async with runtime.uow(Principal.system()) as uow:
        await uow.session.execute(
            update(Recurrence)
            .where(Recurrence.id == uuid.UUID(over["id"]))
            .values(ends_on=today - timedelta(days=1))
        )
        await uow.commit()
    over = (
        await client.get(url, params={"resident_id": area.patient}, headers=area.leader)
    ).json()["items"][0]
    last_day = await post(client, url, {**body, "at": "18:00", "ends_on": str(today)}, area.leader)
    assert (over["status"], over["active"]) == ("ended", False)
    listed = await client.get(url, params={"resident_id": area.patient}, headers=area.leader)
    shown = {r["id"]: (r["status"], r["active"]) for r in listed.json()["items"]}
    assert shown == {over["id"]: ("ended", False), last_day["id"]: ("active", True)}
    # Every day at 07:30: were it running, today's trip would appear at some tick of the day.
    midnight = datetime.combine(today, time(0), tzinfo=runtime.settings.zone)
    for step in range(17):
        await runtime.tick(RECURRING_REQUESTS, now=midnight + timedelta(minutes=90 * step))
    async with runtime.uow(Principal.system()) as uow:
        made = await uow.session.scalars(
            select(HelpRequest.recurrence_id).where(HelpRequest.recurrence_id.is_not(None))
        )
        assert {str(r) for r in made} == {last_day["id"]}
    stopped = await client.post(f"{url}/{over['id']}/stop", headers=area.leader)
    assert stopped.status_code == 409, stopped.text
    assert str(today - timedelta(days=1)) in stopped.json()["detail"]


async def test_a_series_already_over_when_entered_is_refused_naming_ends_on(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    """Staff entering a dialysis prescription at night with last week's end date would see
    it accepted and `ended` at once, no trip ever made: a series whose ``ends_on`` has
    passed on the town office's calendar is refused, naming ``ends_on``; nothing is kept.
    One ending today still has today's trip to make."""
    today = platform.runtime("logistics").settings.today()
    body = dialysis(
        area, starts_on=str(today - timedelta(days=30)), ends_on=str(today - timedelta(days=1))
    )
    url = "/v1/recurring-requests"
    over = await client.post(url, json=body, headers=area.leader)
    assert over.status_code == 422, over.text
    assert [e["field"] for e in over.json()["errors"]] == ["ends_on"], over.text
    assert str(today - timedelta(days=1)) in over.json()["detail"]
    listed = await client.get(url, params={"resident_id": area.patient}, headers=area.leader)
    assert listed.json()["items"] == []
    running = await post(client, url, {**body, "ends_on": str(today)}, area.leader)
    assert running["status"] == "active"


async def test_a_series_whose_resident_is_gone_from_the_directory_holds_up_no_other(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    """A re-sync of the registry that no longer holds a patient (their record gone) leaves
    their series without anyone to drive: it is skipped, and the other patients' trips
    still appear on time."""
    trip = {"kind": "medical_transport", "weekdays": ["mon"], "at": "07:30"}
    trip |= {"starts_on": "2026-12-07", "hospital": "Dialysis centre"}
    gone = {**trip, "resident_id": area.patient, "reason": "dialysis"}
    kept = {**trip, "resident_id": area.mother, "reason": "pregnancy"}
    await post(client, "/v1/recurring-requests", gone, area.leader)
    series = await post(client, "/v1/recurring-requests", kept, area.leader)
    runtime = platform.runtime("logistics")
    async with runtime.uow(Principal.system()) as uow:
        resident = directory.models.Resident
        await uow.session.execute(
            resident.__table__.delete().where(resident.id == uuid.UUID(area.patient))
        )
        await uow.commit()

    await runtime.tick(RECURRING_REQUESTS, now=datetime(2026, 12, 6, 22, 0, tzinfo=UTC))
    async with runtime.uow(Principal.system()) as uow:
        made = await uow.session.scalars(
            select(HelpRequest.recurrence_id).where(HelpRequest.recurrence_id.is_not(None))
        )
        assert [str(r) for r in made] == [series["id"]]


async def test_the_same_recurring_trips_entered_twice_are_refused_naming_the_first(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    today = platform.runtime("logistics").settings.today()
    body = dialysis(area)
    url = "/v1/recurring-requests"
    first = await post(client, url, body, area.leader)
    # A double click at night, the days in another order: every trip would come twice.
    again = await client.post(
        url, json={**body, "weekdays": ["wed", "fri", "mon"]}, headers=area.leader
    )
    assert again.status_code == 409, again.text
    problem = again.json()
    assert first["id"] in problem["detail"]
    assert problem["errors"][0]["field"] == "weekdays"
    # Another time, or other days, are other trips.
    evening = await client.post(url, json={**body, "at": "18:00"}, headers=area.leader)
    assert evening.status_code == 201, evening.text
    tuesday = await client.post(url, json={**body, "weekdays": ["tue"]}, headers=area.leader)
    assert tuesday.status_code == 201, tuesday.text
    # Sent at once, the same one is entered once.
    racing = await asyncio.gather(
        *(client.post(url, json={**body, "at": "12:00"}, headers=area.leader) for _ in range(3))
    )
    assert sorted(r.status_code for r in racing) == [201, 409, 409], [r.text for r in racing]
    for lost in (r for r in racing if r.status_code == 409):
        # Named as the request names them, whichever check refused it.
        named = {e["field"] for e in lost.json()["errors"]}
        assert named and named <= {"kind", "weekdays", "at", "starts_on"}, lost.text
    # The same trips for a period after the first one ends (a new prescription) are others;
    # a period overlapping it would make its trips twice.
    bounded = await post(
        client,
        url,
        {**body, "at": "15:00", "ends_on": str(today + timedelta(days=30))},
        area.leader,
    )
    overlapping = await client.post(
        url,
        json={**body, "at": "15:00", "starts_on": str(today + timedelta(days=10))},
        headers=area.leader,
    )
    assert overlapping.status_code == 409 and bounded["id"] in overlapping.json()["detail"]
    following = await client.post(
        url,
        json={**body, "at": "15:00", "starts_on": str(today + timedelta(days=31))},
        headers=area.leader,
    )
    assert following.status_code == 201, following.text
    listed = await client.get(url, params={"resident_id": area.patient}, headers=area.leader)
    assert sorted(r["at_time"] for r in listed.json()["items"] if r["active"]) == [
        "07:30",
        "07:30",
        "12:00",
        "15:00",
        "15:00",
        "18:00",
    ]
    # Once stopped, the same trips may be entered anew.
    stopped = await client.post(f"{url}/{first['id']}/stop", headers=area.leader)
    assert stopped.status_code == 200, stopped.text
    anew = await client.post(url, json=body, headers=area.leader)
    assert anew.status_code == 201, anew.text


async def test_medicine_runs_share_a_trip_and_their_cards_go_out_and_come_back(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    leader = area.leader
    first = await ask(client, leader, area.patient, "medicine_run", hospital=HOSPITAL)
    second = await ask(
        client, leader, area.mother, "medicine_run", hospital="  town people's  HOSPITAL"
    )
    elsewhere = await ask(client, leader, area.mother, "medicine_run", hospital="Clinic 2")
    planned = await client.post("/v1/trips", json={}, headers=leader)
    assert planned.status_code == 201, planned.text
    trips = {t["hospital"]: sorted(r["request_id"] for r in t["runs"]) for t in planned.json()}
    assert trips == {
        HOSPITAL: sorted([first["id"], second["id"]]),
        "Clinic 2": [elsewhere["id"]],
    }
    assert (await client.post("/v1/trips", json={}, headers=leader)).json() == []

    card = f"/v1/requests/{first['id']}/card"
    early = await client.post(card, json={"status": "at_hospital"}, headers=leader)
    assert early.status_code == 409 and "not collected" in early.json()["detail"]
    labels = []
    async with listening(platform, "logistics.card.#") as events:
        for step in ("collected", "at_hospital", "returned"):
            moved = await client.post(card, json={"status": step}, headers=leader)
            assert moved.status_code == 200, moved.text
            assert moved.json()["card"]["status"] == step
            labels.append(moved.json()["card"]["label"])
        back = await client.post(card, json={"status": "returned"}, headers=leader)
        assert back.status_code == 409 and "returned" in back.json()["detail"]

        out = await client.post(
            f"/v1/requests/{second['id']}/card", json={"status": "collected"}, headers=leader
        )
        card_due = at(out.json()["card"]["due_at"])
        assert card_due - at(out.json()["card"]["collected_at"]) == timedelta(hours=24)
        runtime = platform.runtime("logistics")
        await runtime.tick(CARD_OVERDUE, now=card_due - timedelta(minutes=1))
        await asyncio.gather(
            runtime.tick(CARD_OVERDUE, now=card_due + timedelta(minutes=1)),
            runtime.tick(CARD_OVERDUE, now=card_due + timedelta(minutes=1)),
        )
        await runtime.tick(CARD_OVERDUE, now=card_due + timedelta(hours=3))

        async def five() -> bool:
            return len(events) >= 5

        await eventually(five, what="card events")
        await asyncio.sleep(0.3)
    assert len(set(labels)) == 1 and labels[0].startswith("MR-")
    assert [e.type.removeprefix("logistics.card.") for e in events] == [
        "collected",
        "at_hospital",
        "returned",
        "collected",
        "overdue",
    ]
    assert events[-1].payload["request_id"] == second["id"]
    groceries = await ask(client, leader, area.mother, "groceries")
    refused = await client.post(
        f"/v1/requests/{groceries['id']}/card", json={"status": "collected"}, headers=leader
    )
    # What is wrong is the request's kind, not the step asked for.
    assert refused.status_code == 409 and refused.json()["errors"][0]["field"] == "kind"
    outstanding = await client.get("/v1/cards", headers=leader)
    assert [r["id"] for r in outstanding.json()["items"]] == [second["id"]]
    # The run called off before the hospital: the card goes back to the resident from here,
    # and only then is the run cancelled (its card is not left unaccounted for).
    handed_back = await client.post(
        f"/v1/requests/{second['id']}/card", json={"status": "returned"}, headers=leader
    )
    assert handed_back.status_code == 200, handed_back.text
    cancelled = await act(client, leader, second["id"], "cancel", reason="went by ambulance")
    assert cancelled.status_code == 200, cancelled.text
    assert (await client.get("/v1/cards", headers=leader)).json()["items"] == []


async def test_a_building_leader_groups_the_runs_of_their_own_compound_and_of_no_other(
    client: httpx.AsyncClient, town: Town, area: Area
) -> None:
    """Naming their own compound narrows the grouping to its runs (it answered 403 while
    ``{}`` worked); another committee's compound is outside their scope: 404 naming
    ``compound_id``, as every id out of scope is answered."""
    leader = area.leader
    run = await ask(client, leader, area.patient, "medicine_run", hospital=HOSPITAL)
    other = await make_compound(client, town.id, town.operator, code="C9")

    async def known() -> bool:
        # The town's operator may name it: it is in the logistics directory (no runs there).
        body = {"compound_id": other.id}
        planned = await client.post("/v1/trips", json=body, headers=town.operator)
        return planned.status_code == 201

    await eventually(known, what="compound C9 in the logistics directory")
    elsewhere = await client.post("/v1/trips", json={"compound_id": other.id}, headers=leader)
    assert elsewhere.status_code == 404, elsewhere.text
    assert [e["field"] for e in elsewhere.json()["errors"]] == ["compound_id"]

    own = {"compound_id": area.compound.id}
    planned = await client.post("/v1/trips", json=own, headers=leader)
    assert planned.status_code == 201, planned.text
    assert [[r["request_id"] for r in t["runs"]] for t in planned.json()] == [[run["id"]]]
    assert planned.json()[0]["compound_id"] == area.compound.id


async def test_a_medicine_run_is_not_closed_or_cancelled_while_its_card_is_out(
    client: httpx.AsyncClient, town: Town, area: Area
) -> None:
    leader = area.leader
    run = await ask(client, leader, area.patient, "medicine_run", hospital=HOSPITAL)
    card = f"/v1/requests/{run['id']}/card"
    assigned = await act(client, leader, run["id"], "assign", volunteer_id=area.helpers[1])
    assert assigned.status_code == 200, assigned.text
    assert (await act(client, leader, run["id"], "start")).status_code == 200

    for step, where in (("collected", "with the volunteer"), ("at_hospital", "at the hospital")):
        moved = await client.post(card, json={"status": step}, headers=leader)
        assert moved.status_code == 200, moved.text
        for action, body in (("done", {}), ("cancel", {"reason": "went by ambulance"})):
            refused = await act(client, leader, run["id"], action, **body)
            assert refused.status_code == 409, (step, action, refused.text)
            problem = refused.json()
            assert f"the insurance card is still {where}" in problem["detail"]
            assert "return it to the resident first" in problem["detail"]
            assert problem["errors"][0]["field"] == "card.status"
        read = await client.get(f"/v1/requests/{run['id']}", headers=leader)
        assert read.json()["status"] == "in_progress"

    assert (await client.post(card, json={"status": "returned"}, headers=leader)).status_code == 200
    done = await act(client, leader, run["id"], "done")
    assert done.status_code == 200, done.text

    # An errand done (or closed, or cancelled) takes no card out any more: nobody is to run it.
    other = await ask(client, leader, area.mother, "medicine_run", hospital=HOSPITAL)
    given = await act(client, leader, other["id"], "assign", volunteer_id=area.helpers[1])
    assert given.status_code == 200, given.text
    for action in ("start", "done"):
        assert (await act(client, leader, other["id"], action)).status_code == 200
    out = f"/v1/requests/{other['id']}/card"
    late = await client.post(out, json={"status": "collected"}, headers=leader)
    assert late.status_code == 409, late.text
    assert late.json()["errors"][0]["field"] == "status" and "done" in late.json()["detail"]
    closed = await act(client, leader, other["id"], "confirm")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    called_off = await ask(client, leader, area.mother, "medicine_run", hospital=HOSPITAL)
    cancelled = await act(client, leader, called_off["id"], "cancel", reason="went by ambulance")
    assert cancelled.status_code == 200, cancelled.text
    card_of_cancelled = f"/v1/requests/{called_off['id']}/card"
    refused = await client.post(card_of_cancelled, json={"status": "collected"}, headers=leader)
    assert refused.status_code == 409 and "cancelled" in refused.json()["detail"]


async def test_a_volunteer_sees_only_their_own_errands_masked(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    leader = area.leader
    mine = await ask(client, leader, area.patient, "groceries")
    theirs = await ask(client, leader, area.mother, "groceries")
    await ask(client, leader, area.mother, "other")
    await act(client, leader, mine["id"], "assign", volunteer_id=area.helpers[0])
    await act(client, leader, theirs["id"], "assign", volunteer_id=area.helpers[1])
    helper = await volunteer_signed_in(client, town, area.helpers[0], "helper-zhou")

    listed = await client.get("/v1/requests", headers=helper)
    assert listed.status_code == 200, listed.text
    [errand] = listed.json()["items"]
    assert errand["id"] == mine["id"]
    assert errand["phone"] == "+86139****5678"
    assert errand["address"] == "building 1, unit 1, room 102"
    assert (await client.get("/v1/requests?reveal=true", headers=helper)).status_code == 403
    other = await client.get(f"/v1/requests/{theirs['id']}", headers=helper)
    assert other.status_code == 404
    assert (await act(client, helper, theirs["id"], "start")).status_code == 404
    assert (await act(client, helper, mine["id"], "start")).status_code == 200
    assert (await act(client, helper, mine["id"], "assign", team="x")).status_code == 403
    assert (await act(client, helper, mine["id"], "done")).status_code == 200
    # Once done, the errand no longer needs the door or the phone.
    after = (await client.get(f"/v1/requests/{mine['id']}", headers=helper)).json()
    assert (after["address"], after["phone"]) == ("building 1", None)

    revealed = await client.get(f"/v1/requests/{mine['id']}?reveal=true", headers=leader)
    assert revealed.json()["phone"] == "+8613912345678"
    async with platform.runtime("logistics").uow(Principal.system()) as uow:
        rows = (await uow.session.execute(select(kernel.access_log))).all()
    assert [(r.resource, r.record_ids, r.role) for r in rows] == [
        ("help request", [mine["id"]], "building_leader")
    ]

    outsider = await make_compound(client, town.id, town.operator, code="C9")
    staff = await committee_staff(client, town, outsider, "staff-c9")
    assert (await client.get("/v1/requests", headers=staff)).json()["items"] == []
    refused = await client.post(
        "/v1/requests", json={"resident_id": area.mother, "kind": "groceries"}, headers=staff
    )
    assert refused.status_code == 404


async def test_bad_steps_and_bad_input_are_refused_naming_the_state_or_field(
    client: httpx.AsyncClient, town: Town, area: Area
) -> None:
    leader = area.leader
    request = await ask(client, leader, area.mother, "groceries")
    early = await act(client, leader, request["id"], "start")
    assert early.status_code == 409 and "open" in early.json()["detail"]
    confirm = await act(client, leader, request["id"], "confirm")
    assert confirm.status_code == 409 and "it must be done" in confirm.json()["detail"]
    assert (await act(client, leader, request["id"], "cancel")).status_code == 422
    cancelled = await act(client, leader, request["id"], "cancel", reason="moved in with family")
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "moved in with family"
    late = await act(client, leader, request["id"], "assign", volunteer_id=area.helpers[0])
    assert late.status_code == 409 and "cancelled" in late.json()["detail"]

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"resident_id": area.mother, "kind": "medical_transport"}, 422, "reason"),
        ({"resident_id": area.mother, "kind": "medicine_run"}, 422, "hospital"),
        ({"resident_id": area.mother, "kind": "pizza"}, 422, "kind"),
        (
            {"resident_id": "0193a1c2-0000-7000-8000-000000000999", "kind": "groceries"},
            404,
            "resident_id",
        ),
    ]
    for body, status, named in cases:
        answer = await client.post("/v1/requests", json=body, headers=leader)
        assert answer.status_code == status, (body, answer.text)
        assert named in answer.text
    fresh = await ask(client, leader, area.mother, "groceries")
    # A resident is no volunteer.
    nobody = await act(client, leader, fresh["id"], "assign", volunteer_id=area.mother)
    assert nobody.status_code == 404 and "volunteer_id" in nobody.text


async def test_a_retried_request_gets_its_first_answer_even_after_the_state_moved_on(
    client: httpx.AsyncClient, area: Area, platform: Platform
) -> None:
    """A phone that lost the answers resends later: the create and the cancel each come back
    as they were first answered, one request is stored, and nothing happens twice."""
    leader = area.leader
    body = {"resident_id": area.patient, "kind": "groceries", "details": "rice"}
    keyed = {**leader, "Idempotency-Key": "rice-1"}
    async with listening(platform, "logistics.request.#") as events:
        first = await client.post("/v1/requests", json=body, headers=keyed)
        assert first.status_code == 201, first.text
        request_id = first.json()["id"]
        cancel = {**leader, "Idempotency-Key": "rice-1-cancel"}
        cancelled = await client.post(
            f"/v1/requests/{request_id}/cancel",
            json={"reason": "family brought rice"},
            headers=cancel,
        )
        assert cancelled.status_code == 200, cancelled.text

        # Sent alone now, the create would make a second request and the cancel would be
        # refused (already cancelled): with their keys they are answered as before.
        again = await client.post("/v1/requests", json=body, headers=keyed)
        assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
        assert again.json() == first.json()
        cancelled_again = await client.post(
            f"/v1/requests/{request_id}/cancel",
            json={"reason": "family brought rice"},
            headers=cancel,
        )
        assert cancelled_again.status_code == 200, cancelled_again.text
        assert cancelled_again.headers.get("Idempotent-Replayed") == "true"
        assert cancelled_again.json() == cancelled.json()
        refused = await client.post(
            f"/v1/requests/{request_id}/cancel", json={"reason": "another"}, headers=cancel
        )
        assert refused.status_code == 409 and "Idempotency-Key" in refused.text

        async def both() -> bool:
            return len([e for e in events if e.payload["request_id"] == request_id]) >= 2

        await eventually(both, what="the created and cancelled events")
        await asyncio.sleep(0.3)
    mine = [e.type for e in events if e.payload["request_id"] == request_id]
    assert mine == ["logistics.request.created", "logistics.request.cancelled"]
    assert await _count(platform, HelpRequest) == 1


async def test_assigning_the_same_volunteer_again_changes_and_sends_nothing(
    client: httpx.AsyncClient, area: Area, platform: Platform
) -> None:
    """A leader's phone that lost the answer assigns again without a key: the errand is
    the volunteer's already, so nothing changes (no revision, no second `.assigned`, which
    notify would turn into a second SMS); assigning someone else still does."""
    leader = area.leader
    request = await ask(client, leader, area.mother, "baby_supplies")
    async with listening(platform, "logistics.request.#") as events:
        first = await act(client, leader, request["id"], "assign", volunteer_id=area.helpers[0])
        assert first.status_code == 200, first.text
        again = await act(client, leader, request["id"], "assign", volunteer_id=area.helpers[0])
        assert again.status_code == 200, again.text
        kept = ("revision", "assigned_at", "assignee_id", "status")
        assert {k: again.json()[k] for k in kept} == {k: first.json()[k] for k in kept}
        other = await act(client, leader, request["id"], "assign", volunteer_id=area.helpers[1])
        assert other.status_code == 200, other.text
        assert other.json()["assignee_id"] == area.helpers[1]
        assert other.json()["revision"] == first.json()["revision"] + 1

        def assigned() -> list[tuple[int, str]]:
            return [
                (e.payload["revision"], e.payload["assignee_id"])
                for e in of_type(events, "logistics.request.assigned")
                if e.payload["request_id"] == request["id"]
            ]

        async def two() -> bool:
            return len(assigned()) >= 2

        await eventually(two, what="two assigned events")
        await asyncio.sleep(0.3)
    assert assigned() == [(2, area.helpers[0]), (3, area.helpers[1])]


async def test_a_volunteer_sees_only_the_trips_and_counts_of_their_own_errands(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    leader = area.leader
    mine = await ask(client, leader, area.patient, "medicine_run", hospital=HOSPITAL)
    theirs = await ask(client, leader, area.mother, "medicine_run", hospital=HOSPITAL)
    elsewhere = await ask(client, leader, area.mother, "medicine_run", hospital="Clinic 2")
    await act(client, leader, mine["id"], "assign", volunteer_id=area.helpers[0])
    await act(client, leader, theirs["id"], "assign", volunteer_id=area.helpers[1])
    planned = await client.post("/v1/trips", json={}, headers=leader)
    assert planned.status_code == 201, planned.text
    trips = {t["hospital"]: t for t in planned.json()}
    helper = await volunteer_signed_in(client, town, area.helpers[0], "helper-trips")

    listed = await client.get("/v1/trips", headers=helper)
    assert listed.status_code == 200, listed.text
    [trip] = listed.json()["items"]
    # Their trip shows their own run only, not the other resident's on it.
    assert trip["id"] == trips[HOSPITAL]["id"]
    assert [r["request_id"] for r in trip["runs"]] == [mine["id"]]
    one = await client.get(f"/v1/trips/{trip['id']}", headers=helper)
    assert [r["request_id"] for r in one.json()["runs"]] == [mine["id"]]
    other = await client.get(f"/v1/trips/{trips['Clinic 2']['id']}", headers=helper)
    assert other.status_code == 404
    counts = await client.get("/v1/requests/counts", headers=helper)
    assert counts.status_code == 200, counts.text
    assert [(c["open"], c["overdue"]) for c in counts.json()] == [(1, 0)]
    # A volunteer with no errand counts nothing.
    idle = await volunteer_signed_in(client, town, area.night_owl, "helper-idle")
    assert (await client.get("/v1/requests/counts", headers=idle)).json() == []
    assert (await client.get("/v1/trips", headers=idle)).json()["items"] == []
    # A resident's recurring trips are the committee's plans, not a volunteer's errands.
    recurring = dialysis(area)
    await post(client, "/v1/recurring-requests", recurring, leader)
    assert (await client.get("/v1/recurring-requests", headers=idle)).status_code == 403
    listed = await client.get("/v1/recurring-requests", headers=leader)
    assert [r["resident_id"] for r in listed.json()["items"]] == [area.patient]
    # The leader still sees both runs of the trip and every open request counted.
    full = (await client.get(f"/v1/trips/{trip['id']}", headers=leader)).json()
    assert sorted(r["request_id"] for r in full["runs"]) == sorted([mine["id"], theirs["id"]])
    assert elsewhere["id"] in [r["request_id"] for r in trips["Clinic 2"]["runs"]]


async def test_an_errand_goes_only_to_a_volunteer_who_serves_its_building(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    """A volunteer of another compound would never see the errand given to them (a
    volunteer reads only their buildings): the assignment is refused naming `volunteer_id`,
    and the request stays as it was, with no `.assigned` for notify to send them."""
    request = await ask(client, area.leader, area.mother, "groceries")
    async with listening(platform, "logistics.request.assigned") as events:
        refused = await act(
            client, town.operator, request["id"], "assign", volunteer_id=area.outsider
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "volunteer_id"
        assert "not assigned" in refused.json()["detail"]
        await asyncio.sleep(0.3)
    assert of_type(events, "logistics.request.assigned") == []
    kept = (await client.get(f"/v1/requests/{request['id']}", headers=area.leader)).json()
    assert (kept["status"], kept["assignee_id"], kept["revision"]) == ("open", None, 1)
    # One who serves the building gets it, and sees it.
    given = await act(client, town.operator, request["id"], "assign", volunteer_id=area.helpers[1])
    assert given.status_code == 200, given.text
    helper = await volunteer_signed_in(client, town, area.helpers[1], "helper-zheng")
    seen = await client.get(f"/v1/requests/{request['id']}", headers=helper)
    assert seen.status_code == 200, seen.text


async def test_a_refused_request_names_the_field_to_correct(
    client: httpx.AsyncClient, town: Town, area: Area
) -> None:
    """What a leader's phone must correct is named in `errors`, not the whole body: the
    transport's missing reason, the medicine run's hospital, the blank attachment, the team
    or volunteer to give it to, a blank team or reason (whitespace is no name)."""
    leader, mother = area.leader, area.mother
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/requests", {"resident_id": mother, "kind": "medical_transport"}, "reason"),
        (
            "/v1/requests",
            {"resident_id": mother, "kind": "groceries", "reason": "dialysis"},
            "reason",
        ),
        ("/v1/requests", {"resident_id": mother, "kind": "medicine_run"}, "hospital"),
        (
            "/v1/requests",
            {"resident_id": mother, "kind": "medicine_run", "hospital": "   "},
            "hospital",
        ),
        (
            "/v1/requests",
            {"resident_id": mother, "kind": "groceries", "attachments": ["photo:1", ""]},
            "attachments.1",
        ),
        (
            "/v1/recurring-requests",
            {
                "resident_id": mother,
                "kind": "medical_transport",
                "weekdays": ["mon"],
                "at": "07:30",
                "starts_on": "2026-12-07",
            },
            "reason",
        ),
        (
            "/v1/recurring-requests",
            {
                "resident_id": mother,
                "kind": "groceries",
                "weekdays": ["mon"],
                "at": "07:30",
                "starts_on": "2026-12-07",
                "ends_on": "2026-12-01",
            },
            "ends_on",
        ),
    ]
    request = await ask(client, leader, mother, "groceries")
    steps = f"/v1/requests/{request['id']}"
    cases += [
        (f"{steps}/assign", {}, "volunteer_id"),
        (f"{steps}/assign", {"volunteer_id": area.helpers[0], "team": "errands"}, "team"),
        (f"{steps}/assign", {"team": "   "}, "team"),
        (f"{steps}/cancel", {"reason": "  "}, "reason"),
    ]
    for path, body, named in cases:
        answer = await client.post(path, json=body, headers=leader)
        assert answer.status_code == 422, (path, body, answer.text)
        assert [e["field"] for e in answer.json()["errors"]] == [named], (body, answer.text)
    kept = (await client.get(steps, headers=leader)).json()
    assert (kept["status"], kept["revision"]) == ("open", 1)


async def test_a_volunteer_serving_a_whole_compound_sees_and_runs_the_errand_given_there(
    client: httpx.AsyncClient, town: Town, area: Area, platform: Platform
) -> None:
    """A volunteer assigned to the whole compound (not one building) is offered for its
    errands and may be given one: they must then see it and run it, as one assigned to the
    building does (their scope holds every building of the compound)."""
    h = town.operator
    body = {"compound_id": area.compound.id, "name": "孙全区", "kind": "service"}
    person = await post(client, "/v1/volunteers", body, h)
    whole = {"person_kind": "volunteer", "person_id": person["id"], "compound_id": area.compound.id}
    await post(client, "/v1/assignments", whole, h)

    async def arrived() -> bool:
        return await _count(platform, directory.models.Assignment) == 6

    await eventually(arrived, what="the compound-wide assignment in logistics")
    request = await ask(client, area.leader, area.mother, "groceries")
    other = await ask(client, area.leader, area.patient, "groceries")
    given = await act(client, h, request["id"], "assign", volunteer_id=person["id"])
    assert given.status_code == 200, given.text

    volunteer = await volunteer_signed_in(client, town, person["id"], "volunteer-sun")
    seen = await client.get(f"/v1/requests/{request['id']}", headers=volunteer)
    assert seen.status_code == 200, seen.text
    listed = await client.get("/v1/requests", headers=volunteer)
    assert [r["id"] for r in listed.json()["items"]] == [request["id"]]
    started = await act(client, volunteer, request["id"], "start")
    assert started.status_code == 200, started.text
    # Only what was given to them: the compound's other errand stays out of sight.
    hidden = await client.get(f"/v1/requests/{other['id']}", headers=volunteer)
    assert hidden.status_code == 404, hidden.text
