"""Antigen self-tests: one report per resident and day, a building leader's list with its
bad rows named, the residents yet to report, and a positive test retested by PCR."""

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from cordon.platform import Platform
from tests.conftest import Town
from tests.support import Compound, committee_staff, make_compound, make_resident
from tests.test_results import results_csv, upload
from tests.test_rounds import in_directory, schedule, tube

DAY = "2022-04-03"


class Building:
    """Household 101 (two people) in unit 1 and household 201 (one) in unit 2, and a
    stranger in another compound."""

    def __init__(self, compound: Compound, people: list[str], stranger: str) -> None:
        self.compound = compound
        self.id = compound.building_id
        self.people = people
        self.stranger = stranger


@pytest.fixture
async def building(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> Building:
    compound = await make_compound(client, town.id, town.operator, code="A1")
    people = [
        (await make_resident(client, compound, town.operator, household=h, unit=u, name=n))["id"]
        for h, u, n in (("101", 0, "孙丽"), ("101", 0, "孙涛"), ("201", 1, "周平"))
    ]
    other = await make_compound(client, town.id, town.operator, code="A2")
    stranger = await make_resident(client, other, town.operator, name="吴昊")
    await in_directory(platform, residents=4)
    return Building(compound, people, stranger["id"])


def report(resident: str, result: str, temperature: float | None = 36.6, **extra: Any) -> Any:
    return {"resident_id": resident, "result": result, "temperature": temperature, **extra}


async def test_one_report_per_resident_and_day_and_a_positive_asks_for_pcr(
    client: httpx.AsyncClient, town: Town, building: Building
) -> None:
    first, *_ = building.people
    path = "/v1/antigen-reports"
    created = await client.post(
        path, json=report(first, "negative", day=DAY), headers=town.operator
    )
    assert created.status_code == 201, created.text
    assert (created.json()["outcome"], created.json()["task_id"]) == ("created", None)
    same = await client.post(path, json=report(first, "negative", day=DAY), headers=town.operator)
    assert (same.status_code, same.json()["outcome"]) == (200, "unchanged")
    assert same.json()["id"] == created.json()["id"]
    corrected = await client.post(
        path, json=report(first, "positive", 37.9, day=DAY), headers=town.operator
    )
    assert (corrected.status_code, corrected.json()["outcome"]) == (200, "corrected")
    assert corrected.json()["previous"] == {"result": "negative", "temperature": 36.6}
    task_id = corrected.json()["task_id"]
    assert task_id is not None

    fever = await client.post(
        path, json=report(first, "negative", 45.2, day=DAY), headers=town.operator
    )
    assert fever.status_code == 422 and fever.json()["errors"][0]["field"] == "temperature"
    tomorrow = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    ahead = await client.post(
        path, json=report(first, "negative", day=tomorrow), headers=town.operator
    )
    assert ahead.status_code == 422 and ahead.json()["errors"][0]["field"] == "day"
    nobody = await client.post(
        path, json=report("0193a1c2-0000-7000-8000-0000000000a1", "negative"), headers=town.operator
    )
    assert nobody.status_code == 404 and nobody.json()["errors"][0]["field"] == "resident_id"

    next_day = await client.post(
        path, json=report(first, "positive", 37.5, day="2022-04-04"), headers=town.operator
    )
    assert next_day.json()["outcome"] == "created" and next_day.json()["task_id"] is None
    tasks = await client.get("/v1/tasks?kind=pcr_after_antigen&status=open", headers=town.operator)
    [task] = tasks.json()["items"]
    assert (task["id"], task["resident_id"], task["door_to_door"]) == (task_id, first, True)

    listed = await client.get(f"{path}?day={DAY}&building_id={building.id}", headers=town.operator)
    [shown] = listed.json()["items"]
    assert (shown["result"], shown["temperature"], shown["name"]) == ("positive", 37.9, "孙*")


async def test_a_self_test_read_in_the_future_or_on_another_day_is_refused(
    client: httpx.AsyncClient, town: Town, building: Building
) -> None:
    first, second, third = building.people
    path = "/v1/antigen-reports"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ahead = await client.post(
        path, json=report(first, "negative", reported_at=tomorrow), headers=town.operator
    )
    assert ahead.status_code == 422, ahead.text
    assert ahead.json()["errors"][0]["field"] == "reported_at"
    assert "in the future" in ahead.json()["detail"]
    days_before = report(first, "negative", day=DAY, reported_at="2022-03-31T09:00:00+08:00")
    other_day = await client.post(path, json=days_before, headers=town.operator)
    assert other_day.status_code == 422, other_day.text
    assert other_day.json()["errors"][0]["field"] == "reported_at"
    assert "not on the report's day 2022-04-03" in other_day.json()["detail"]
    # 07:30 on the 3rd in the town (+08:00) is still the 2nd in UTC: the town's day counts.
    morning = report(first, "negative", day=DAY, reported_at="2022-04-02T23:30:00Z")
    assert (await client.post(path, json=morning, headers=town.operator)).status_code == 201

    batch = {
        "building_id": building.id,
        "reports": [
            report(
                second, "negative", reported_at=(datetime.now(UTC) + timedelta(hours=5)).isoformat()
            )
        ],
    }
    refused = await client.post(f"{path}/batch", json=batch, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert [(e["row"], e["field"]) for e in refused.json()["errors"]] == [(0, "reported_at")]
    # A phone a few minutes fast is within the clocks' tolerance.
    fast = (datetime.now(UTC) + timedelta(minutes=3)).isoformat()
    batch["reports"] = [report(third, "negative", reported_at=fast)]
    kept = await client.post(f"{path}/batch", json=batch, headers=town.operator)
    assert (kept.status_code, kept.json()["created"]) == (200, 1), kept.text


async def test_a_self_test_without_a_day_is_filed_under_the_towns_date_of_its_reading(
    client: httpx.AsyncClient, town: Town, building: Building, platform: Platform
) -> None:
    first, second, _ = building.people
    zone = platform.runtime("testing").settings.zone
    # Five past midnight in the town (Asia/Shanghai) is 16:05 the day before in UTC.
    day = datetime.now(zone).date() - timedelta(days=2)
    just_after_midnight = datetime.combine(day, time(0, 5), zone).isoformat()
    filed = await client.post(
        "/v1/antigen-reports",
        json=report(first, "negative", reported_at=just_after_midnight),
        headers=town.operator,
    )
    assert filed.status_code == 201, filed.text
    assert filed.json()["day"] == day.isoformat()
    # A building leader's list without a day: each row on its reading's date.
    batch = {
        "building_id": building.id,
        "reports": [report(second, "negative", reported_at=just_after_midnight)],
    }
    listed = await client.post("/v1/antigen-reports/batch", json=batch, headers=town.operator)
    assert (listed.status_code, listed.json()["created"]) == (200, 1), listed.text
    that_day = await client.get(
        f"/v1/antigen-reports?day={day}&building_id={building.id}", headers=town.operator
    )
    assert {r["resident_id"] for r in that_day.json()["items"]} == {first, second}


async def test_a_self_test_without_a_day_or_reading_is_todays_on_the_towns_clock(
    client: httpx.AsyncClient, town: Town, building: Building, platform: Platform
) -> None:
    first, second, third = building.people
    # A town office whose date is not UTC's right now: east of it late in the UTC day, west
    # of it early (06:30 in Shanghai is still yesterday in UTC).
    utc = datetime.now(UTC)
    runtime = platform.runtime("testing")
    east_or_west = "Pacific/Kiritimati" if utc.hour >= 11 else "Pacific/Pago_Pago"
    runtime.settings = runtime.settings.model_copy(update={"time_zone": east_or_west})
    today = datetime.now(ZoneInfo(east_or_west)).date()
    assert today != datetime.now(UTC).date()

    now = await client.post(
        "/v1/antigen-reports", json=report(first, "negative"), headers=town.operator
    )
    assert now.status_code == 201, now.text
    assert now.json()["day"] == today.isoformat()
    told = await client.post(
        "/v1/antigen-reports",
        json=report(second, "negative", day=today.isoformat()),
        headers=town.operator,
    )
    assert told.status_code == 201, told.text
    # Who has not reported today: the same day, on the same clock.
    missing = await client.get(
        f"/v1/antigen-reports/missing?building_id={building.id}", headers=town.operator
    )
    assert missing.status_code == 200, missing.text
    assert [m["resident_id"] for m in missing.json()["items"]] == [third]


async def test_a_building_list_keeps_its_good_rows_and_names_the_bad_ones(
    client: httpx.AsyncClient, town: Town, building: Building
) -> None:
    first, second, third = building.people
    rows = [
        report(second, "negative"),
        report(third, "negative", 44.0),
        report(building.stranger, "negative"),
        report(second, "positive"),
        {"resident_id": "not-an-id", "result": "negative"},
        report(first, "maybe"),
    ]
    body = {"building_id": building.id, "day": DAY, "reports": rows}
    answered = await client.post("/v1/antigen-reports/batch", json=body, headers=town.operator)
    assert answered.status_code == 200, answered.text
    assert (answered.json()["created"], answered.json()["pcr_tasks_opened"]) == (1, 0)
    assert [(e["row"], e["field"]) for e in answered.json()["errors"]] == [
        (1, "temperature"),
        (2, "resident_id"),
        (3, "resident_id"),
        (4, "resident_id"),
        (5, "result"),
    ]
    assert "does not live in this building" in answered.json()["errors"][1]["message"]
    assert "listed twice" in answered.json()["errors"][2]["message"]

    missing = await client.get(
        f"/v1/antigen-reports/missing?building_id={building.id}&day={DAY}", headers=town.operator
    )
    assert sorted(m["resident_id"] for m in missing.json()["items"]) == sorted([first, third])
    assert all("****" in m["phone"] for m in missing.json()["items"])

    hopeless = {
        "building_id": building.id,
        "day": DAY,
        "reports": [report(third, "negative", 30.0)],
    }
    refused = await client.post("/v1/antigen-reports/batch", json=hopeless, headers=town.operator)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "temperature"


async def test_a_building_the_caller_does_not_see_or_no_building_is_refused_naming_it(
    client: httpx.AsyncClient, town: Town, building: Building
) -> None:
    first, *_ = building.people
    staff = await committee_staff(client, town, building.compound, "staff-a1")
    stranger = await client.get(f"/v1/residents/{building.stranger}", headers=town.operator)
    theirs = stranger.json()["building_id"]
    # Not "nobody to chase": a building that is not one, or not the caller's, is a 404.
    for place in (theirs, building.compound.id, building.compound.unit_ids[0]):
        missing = await client.get(
            f"/v1/antigen-reports/missing?building_id={place}", headers=staff
        )
        assert missing.status_code == 404, missing.text
        assert [e["field"] for e in missing.json()["errors"]] == ["building_id"]
        listed = {"building_id": place, "reports": [report(first, "negative")]}
        batch = await client.post("/v1/antigen-reports/batch", json=listed, headers=staff)
        assert batch.status_code == 404, batch.text
        assert [e["field"] for e in batch.json()["errors"]] == ["building_id"]
    mine = await client.get(f"/v1/antigen-reports/missing?building_id={building.id}", headers=staff)
    assert len(mine.json()["items"]) == 3, mine.text


async def test_a_positive_antigen_is_retested_by_pcr_in_an_open_round(
    client: httpx.AsyncClient, town: Town, building: Building, platform: Platform
) -> None:
    first, second, _ = building.people
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [building.compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    newcomer = await make_resident(
        client, building.compound, town.operator, household="102", name="郑新"
    )
    await in_directory(platform, residents=5)
    for resident in (first, newcomer["id"]):
        positive = await client.post(
            "/v1/antigen-reports", json=report(resident, "positive", 37.8), headers=town.operator
        )
        assert positive.json()["task_id"], positive.text

    path = f"/v1/rounds/{round_['id']}/tubes"
    not_due = await client.post(
        path, json=tube("AG0009", [second], retest=True), headers=town.operator
    )
    assert not_due.status_code == 422 and "no open retest" in not_due.json()["detail"]
    retest = await client.post(
        path, json=tube("AG0001", [first], retest=True), headers=town.operator
    )
    assert retest.status_code == 201, retest.text
    joined = await client.post(
        path, json=tube("AG0002", [newcomer["id"]], retest=True), headers=town.operator
    )
    assert joined.status_code == 201, joined.text
    done = await client.get("/v1/tasks?kind=pcr_after_antigen", headers=town.operator)
    assert {(t["status"], t["round_id"]) for t in done.json()["items"]} == {("done", round_["id"])}
    assert {t["done_tube_id"] for t in done.json()["items"]} == {
        retest.json()["id"],
        joined.json()["id"],
    }

    resulted = await upload(
        client, town.operator, results_csv([("AG0001", "positive"), ("AG0002", "negative")])
    )
    assert resulted.json()["applied"] == 2, resulted.text
    [case] = (await client.get("/v1/cases", headers=town.operator)).json()["items"]
    assert (case["resident_id"], case["source"]) == (first, "antigen_confirmed")
    members = await client.get(f"/v1/results?round_id={round_['id']}", headers=town.operator)
    assert {m["resident_id"]: m["status"] for m in members.json()["items"]}[newcomer["id"]] == (
        "negative"
    )


async def test_the_residents_yet_to_report_come_page_by_page(
    client: httpx.AsyncClient, town: Town, building: Building
) -> None:
    """The list to chase honours ``limit`` and ``cursor`` like every other list (a tower
    block holds hundreds of people)."""
    path = f"/v1/antigen-reports/missing?building_id={building.id}&day={DAY}&limit=2"
    first = await client.get(path, headers=town.operator)
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 2 and first.json()["next_cursor"], first.text
    following = await client.get(
        f"{path}&cursor={first.json()['next_cursor']}", headers=town.operator
    )
    assert following.status_code == 200, following.text
    assert len(following.json()["items"]) == 1 and following.json()["next_cursor"] is None
    seen = [m["resident_id"] for m in first.json()["items"] + following.json()["items"]]
    assert sorted(seen) == sorted(building.people)


async def test_a_temperature_that_is_not_a_number_is_refused_naming_it(
    client: httpx.AsyncClient, town: Town, building: Building
) -> None:
    """JSON from Python clients may carry NaN or Infinity: never stored nor a 500, but a 422
    naming the field and saying why."""
    first, second, _ = building.people
    headers = {**town.operator, "Content-Type": "application/json"}
    for number in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"resident_id": "{first}", "result": "negative", "temperature": {number}}}'
        refused = await client.post("/v1/antigen-reports", content=body, headers=headers)
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["field"] == "temperature", refused.text
        assert "finite number" in error["message"], refused.text
        rows = f'[{{"resident_id": "{second}", "result": "negative", "temperature": {number}}}]'
        batch = f'{{"building_id": "{building.id}", "reports": {rows}}}'
        listed = await client.post("/v1/antigen-reports/batch", content=batch, headers=headers)
        assert listed.status_code == 422, listed.text
        [row_error] = listed.json()["errors"]
        assert (row_error["row"], row_error["field"]) == (0, "temperature"), listed.text
        assert "finite number" in row_error["message"], listed.text
    stored = await client.get("/v1/antigen-reports", headers=town.operator)
    assert stored.json()["items"] == []
