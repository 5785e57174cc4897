"""Lab results by upload: pools resulted set-based, retests asked for and recorded, a case
from a positive retest, and every bad file or row answered by its row."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cordon.platform import Platform
from services.testing.models import Round, RoundMember, Tube, TubeMember
from shared.auth import Principal
from shared.db import table_of
from tests.conftest import Town
from tests.support import eventually, listening, make_compound, make_resident, of_type
from tests.test_rounds import in_directory, schedule, tube

RESULTED = "2022-04-02T14:00:00+08:00"
# Retests are swabbed after the pool's result asked for them.
RETESTED = "2022-04-02T15:00:00+08:00"
# The retests' results come after their swabs.
RETEST_RESULTED = "2022-04-02T20:00:00+08:00"
HEADER = "tube_code,result,lab,resulted_at"


def results_csv(
    rows: list[tuple[str, str]], *, lab: str = "Riverside Lab", at: str = RESULTED
) -> bytes:
    lines = [HEADER] + [f"{code},{result},{lab},{at}" for code, result in rows]
    return ("\n".join(lines) + "\n").encode()


async def upload(
    client: httpx.AsyncClient, headers: Any, content: bytes, *, filename: str = "lab.csv"
) -> httpx.Response:
    files = {"file": (filename, content, "text/csv")}
    return await client.post("/v1/results/uploads", files=files, headers=headers)


class Lab:
    """A compound sampled in three pools: household 101 (three people) and 102 (two) in unit
    1, household 201 (two) in unit 2."""

    def __init__(self, compound: Any, round_id: str, people: dict[str, list[str]]) -> None:
        self.compound = compound
        self.round_id = round_id
        self.a, self.b, self.c = people["101"], people["102"], people["201"]


async def sampled_compound(
    client: httpx.AsyncClient, town: Town, platform: Platform, *, code: str = "L1"
) -> Lab:
    compound = await make_compound(client, town.id, town.operator, code=code)
    people: dict[str, list[str]] = {"101": [], "102": [], "201": []}
    for household, size, unit in (("101", 3, 0), ("102", 2, 0), ("201", 2, 1)):
        for n in range(size):
            resident = await make_resident(
                client, compound, town.operator, household=household, unit=unit, name=f"王{n}"
            )
            people[household].append(resident["id"])
    await in_directory(platform, residents=7)
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    pools = [
        tube("P0001", people["101"]),
        tube("N0001", people["102"]),
        tube("I0001", people["201"]),
    ]
    recorded = await client.post(
        f"/v1/rounds/{round_['id']}/tubes/batch", json={"tubes": pools}, headers=town.operator
    )
    assert recorded.json()["accepted"] == 3, recorded.text
    return Lab(compound, round_["id"], people)


@pytest.fixture
async def lab(client: httpx.AsyncClient, town: Town, platform: Platform, workers: None) -> Lab:
    return await sampled_compound(client, town, platform)


async def statuses(client: httpx.AsyncClient, town: Town, lab: Lab) -> dict[str, str]:
    listed = await client.get(f"/v1/results?round_id={lab.round_id}", headers=town.operator)
    assert listed.status_code == 200, listed.text
    return {r["resident_id"]: r["status"] for r in listed.json()["items"]}


async def open_tasks(client: httpx.AsyncClient, town: Town, kind: str) -> list[dict[str, Any]]:
    listed = await client.get(f"/v1/tasks?kind={kind}&status=open", headers=town.operator)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


async def test_an_upload_results_pools_and_a_positive_retest_becomes_one_case(
    client: httpx.AsyncClient, town: Town, lab: Lab, platform: Platform
) -> None:
    async with listening(platform, "testing.#") as events:
        first = results_csv(
            [("P0001", "positive"), ("N0001", "negative"), ("I0001", "invalid"), ("ZZ0009", "阴性")]
        )
        applied = await upload(client, town.operator, first)
        assert applied.status_code == 201, applied.text
        report = applied.json()
        assert (report["status"], report["rows"], report["applied"]) == ("applied", 4, 3)
        assert (report["positive"], report["negative"], report["invalid"]) == (1, 1, 1)
        assert report["people"] == 7 and report["error_count"] == 1
        [unknown] = report["errors"]
        assert (unknown["row"], unknown["column"], unknown["tube_code"]) == (
            5,
            "tube_code",
            "ZZ0009",
        )
        assert "no tube ZZ0009" in unknown["message"]

        expected = {r: "retest_required" for r in lab.a}
        expected |= {r: "negative" for r in lab.b} | {r: "resample_required" for r in lab.c}
        assert await statuses(client, town, lab) == expected
        retests = await open_tasks(client, town, "retest")
        assert sorted(t["resident_id"] for t in retests) == sorted(lab.a)
        assert all(t["door_to_door"] and t["round_id"] == lab.round_id for t in retests)
        resamples = await open_tasks(client, town, "resample")
        assert sorted(t["resident_id"] for t in resamples) == sorted(lab.c)
        pool = (await client.get("/v1/tubes/P0001", headers=town.operator)).json()
        assert (pool["status"], pool["lab"]) == ("positive", "Riverside Lab")

        again = await upload(client, town.operator, first)
        assert again.status_code == 200
        assert (again.json()["status"], again.json()["id"]) == ("duplicate", report["id"])
        overwrite = await upload(
            client, town.operator, results_csv([("P0001", "negative"), ("N0001", "negative")])
        )
        assert overwrite.status_code == 201, overwrite.text
        assert (overwrite.json()["applied"], overwrite.json()["unchanged"]) == (0, 1)
        [refused] = overwrite.json()["errors"]
        assert (refused["row"], refused["column"]) == (2, "result")
        assert "never overwritten" in refused["message"]
        assert await statuses(client, town, lab) == expected
        assert len(await open_tasks(client, town, "retest")) == 3

        path = f"/v1/rounds/{lab.round_id}/tubes/batch"
        singles = [
            tube(f"R000{n}", [r], retest=True, collected_at=RETESTED) for n, r in enumerate(lab.a)
        ]
        recorded = await client.post(path, json={"tubes": singles}, headers=town.operator)
        assert recorded.json()["accepted"] == 3, recorded.text
        assert await open_tasks(client, town, "retest") == []
        retested = results_csv(
            [("R0000", "positive"), ("R0001", "negative"), ("R0002", "negative")],
            at=RETEST_RESULTED,
        )
        assert (await upload(client, town.operator, retested)).json()["applied"] == 3

        async def confirmed() -> bool:
            return bool(of_type(events, "testing.case.confirmed")) and (
                len(of_type(events, "testing.results.recorded")) == 2
            )

        # The upload confirms the case before it records its report, in one transaction:
        # the case leaves first, so the report is awaited too.
        await eventually(confirmed, what="testing.case.confirmed and both reports on the bus")
    [pool_positive] = of_type(events, "testing.pool.positive")
    assert pool_positive.payload["tube_code"] == "P0001"
    assert sorted(pool_positive.payload["member_ids"]) == sorted(lab.a)
    recorded_events = of_type(events, "testing.results.recorded")
    assert [(e.payload["positive"], e.payload["negative"]) for e in recorded_events] == [
        (1, 1),
        (1, 2),
    ]
    [case] = of_type(events, "testing.case.confirmed")
    assert case.payload["resident_id"] == lab.a[0] and case.payload["source"] == "retest"
    contacts = {c["resident_id"]: c["kind"] for c in case.payload["contacts"]}
    assert contacts == {
        lab.a[1]: "close",
        lab.a[2]: "close",
        lab.b[0]: "secondary",
        lab.b[1]: "secondary",
    }
    now = await statuses(client, town, lab)
    assert (now[lab.a[0]], now[lab.a[1]], now[lab.a[2]]) == ("positive", "negative", "negative")


async def test_malformed_files_are_refused_naming_the_row_and_change_nothing(
    client: httpx.AsyncClient,
    town: Town,
    lab: Lab,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad_header = b"code_of_tube,result,lab,resulted_at\nP0001,positive,Lab," + RESULTED.encode()
    refused = await upload(client, town.operator, bad_header)
    assert refused.status_code == 422
    assert refused.json()["errors"][0] | {"message": ""} == {
        "row": 1,
        "column": "tube_code",
        "message": "",
    }

    gbk = f"{HEADER}\nN0001,negative,Lab,{RESULTED}\nP0001,阳性,Lab,{RESULTED}\n".encode("gbk")
    refused = await upload(client, town.operator, gbk)
    assert refused.status_code == 422 and refused.json()["errors"][0]["row"] == 3
    assert "UTF-8" in refused.json()["detail"]
    utf16 = results_csv([("P0001", "positive")]).decode().encode("utf-16")
    assert (await upload(client, town.operator, utf16)).json()["errors"][0]["row"] == 1

    garbage = await client.post(
        "/v1/results/uploads",
        content=b'{"results": [{"tube_code": "P0001",,]}',
        headers={**town.operator, "Content-Type": "application/json"},
    )
    assert garbage.status_code == 422 and "not valid JSON" in garbage.json()["detail"]
    assert garbage.json()["errors"][0]["row"] == 1

    rows = {
        "results": [
            {"tube_code": "N0001", "result": "maybe", "lab": "Lab", "resulted_at": RESULTED},
            {
                "tube_code": "P0001",
                "result": "positive",
                "lab": "Lab",
                "resulted_at": "2022-04-02T14:00",
            },
            {"tube_code": 12345, "result": "negative", "lab": "Lab", "resulted_at": RESULTED},
        ]
    }
    refused = await client.post("/v1/results/uploads", json=rows, headers=town.operator)
    assert refused.status_code == 422
    assert [(e["row"], e["column"]) for e in refused.json()["errors"]] == [
        (0, "result"),
        (1, "resulted_at"),
        (2, "tube_code"),
    ]
    unsupported = await client.post(
        "/v1/results/uploads",
        content=b"P0001 positive",
        headers={**town.operator, "Content-Type": "text/plain"},
    )
    assert unsupported.status_code == 415

    monkeypatch.setattr(platform.settings, "max_upload_mb", 1)
    huge = results_csv([("N0001", "negative")] + [(f"Q{n:07d}", "negative") for n in range(30_000)])
    assert len(huge) > 1 << 20
    too_large = await upload(client, town.operator, huge)
    assert too_large.status_code == 413 and too_large.json()["errors"][0]["message"]

    untouched = {r: "sampled" for r in lab.a + lab.b + lab.c}
    assert await statuses(client, town, lab) == untouched
    listed = await client.get("/v1/results/uploads", headers=town.operator)
    assert listed.json()["items"] == []


async def test_staff_upload_what_they_may_see_and_nobody_else_sees_it(
    client: httpx.AsyncClient, town: Town, lab: Lab, platform: Platform
) -> None:
    from tests.support import committee_staff

    other = await make_compound(client, town.id, town.operator, code="L2")
    outsider = await committee_staff(client, town, other, "staff-l2")
    insider = await committee_staff(client, town, lab.compound, "staff-l1")
    theirs = await upload(client, outsider, results_csv([("P0001", "positive")]))
    # Every row names a tube outside their scope: as for a single tube, not found.
    assert theirs.status_code == 404 and "no tube P0001" in theirs.json()["errors"][0]["message"]
    ours = await upload(
        client, insider, results_csv([("P0001", "positive"), ("N0001", "negative")])
    )
    assert ours.status_code == 201 and ours.json()["applied"] == 2

    theirs_round = await client.get(f"/v1/results?round_id={lab.round_id}", headers=outsider)
    assert theirs_round.status_code == 404, theirs_round.text
    assert (await client.get("/v1/tasks", headers=outsider)).json()["items"] == []
    assert (await client.get("/v1/results/uploads", headers=outsider)).json()["items"] == []
    upload_id = ours.json()["id"]
    assert (
        await client.get(f"/v1/results/uploads/{upload_id}", headers=outsider)
    ).status_code == 404
    mine = await client.get(f"/v1/results/uploads/{upload_id}", headers=insider)
    assert mine.json()["applied"] == 2

    masked = (await client.get(f"/v1/results?round_id={lab.round_id}", headers=insider)).json()
    names = {r["name"] for r in masked["items"]}
    assert names == {"王*"} and all("****" in r["phone"] for r in masked["items"])


async def many_sampled(platform: Platform, town: Town, *, tubes: int) -> tuple[uuid.UUID, bytes]:
    """A round with ``tubes`` pools of two residents each, written straight to the testing
    database (through the API this would take minutes), and the lab file resulting them."""
    now = datetime.now(UTC)
    # Swabbed before the lab's result (a result before its swab is refused).
    swabbed = datetime.fromisoformat(RESULTED) - timedelta(hours=9)
    compound, building = uuid.uuid4(), uuid.uuid4()
    placed = {"town_id": town.id, "compound_id": compound, "building_id": building}
    round_id = uuid.uuid4()
    tube_rows, in_tube, members = [], [], []
    for n in range(tubes):
        tube_id = uuid.uuid4()
        tube_rows.append(
            {
                "id": tube_id,
                "round_id": round_id,
                "code": f"M{n:07d}",
                "pooled": True,
                "retest": False,
                "size": 2,
                "collector": "Nurse Li",
                "collected_at": swabbed,
                "recorded_by": "bench",
                "status": "collected",
                **placed,
            }
        )
        for _ in range(2):
            resident = uuid.uuid4()
            in_tube.append(
                {"tube_id": tube_id, "resident_id": resident, "round_id": round_id, **placed}
            )
            members.append(
                {
                    "round_id": round_id,
                    "resident_id": resident,
                    "household_id": resident,
                    "unit_id": None,
                    "door_to_door": False,
                    "status": "sampled",
                    "tube_id": tube_id,
                    "sampled_at": now,
                    **placed,
                }
            )
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        uow.session.add(
            Round(
                id=round_id,
                name="Town-wide",
                kind="pcr",
                status="open",
                scope={"kind": "town", "ids": []},
                starts_at=now,
                ends_at=now,
                pool_size=10,
                created_by="bench",
                created_at=now,
                town_id=town.id,
            )
        )
        await uow.session.flush()
        for table, rows in ((Tube, tube_rows), (TubeMember, in_tube), (RoundMember, members)):
            await uow.session.execute(table_of(table).insert(), rows)
        await uow.commit()
    lines = [HEADER] + [f"M{n:07d},negative,Riverside Lab,{RESULTED}" for n in range(tubes)]
    return round_id, ("\n".join(lines) + "\n").encode()


async def test_a_whole_lab_day_in_one_file_is_accepted(
    client: httpx.AsyncClient, town: Town, platform: Platform, backend: str
) -> None:
    tubes = 100_000 if backend == "services" else 5_000
    round_id, content = await many_sampled(platform, town, tubes=tubes)
    applied = await upload(client, town.operator, content)
    assert applied.status_code == 201, applied.text
    report = applied.json()
    assert (report["rows"], report["applied"], report["negative"]) == (tubes, tubes, tubes)
    assert report["people"] == 2 * tubes and report["errors"] == []
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        negative = await uow.session.scalar(
            select(func.count())
            .select_from(RoundMember)
            .where(RoundMember.round_id == round_id, RoundMember.status == "negative")
        )
    assert negative == 2 * tubes


async def test_a_result_from_the_future_and_a_retest_from_before_its_pool_are_refused(
    client: httpx.AsyncClient, town: Town, lab: Lab
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    future = results_csv([("P0001", "positive")]).replace(RESULTED.encode(), later.encode())
    refused_upload = await upload(client, town.operator, future)
    assert refused_upload.status_code == 422, refused_upload.text
    [error] = refused_upload.json()["errors"]
    assert (error["row"], error["column"]) == (2, "resulted_at") and "future" in error["message"]

    assert (await upload(client, town.operator, results_csv([("P0001", "positive")]))).is_success
    path = f"/v1/rounds/{lab.round_id}/tubes"
    member = lab.a[0]
    # The pool came back at 14:00: a retest swab from before it is a wrong time.
    early = tube("R0001", [member], retest=True, collected_at="2022-04-02T13:00:00+08:00")
    refused = await client.post(path, json=early, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "collected_at"
    assert "before" in refused.json()["detail"]
    after = tube("R0001", [member], retest=True, collected_at=RETESTED)
    assert (await client.post(path, json=after, headers=town.operator)).status_code == 201


async def test_a_result_from_before_its_tube_was_collected_is_refused_by_row(
    client: httpx.AsyncClient, town: Town, lab: Lab
) -> None:
    # The pools were swabbed at 05:12 (+08:00); clocks may differ by ten minutes (clock_skew).
    swabbed_25_minutes_later = {
        "tube_code": "P0001",
        "result": "negative",
        "lab": "x",
        "resulted_at": "2022-04-02T04:47:00+08:00",
    }
    refused = await client.post(
        "/v1/results/uploads", json={"results": [swabbed_25_minutes_later]}, headers=town.operator
    )
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert (error["row"], error["column"]) == (0, "resulted_at"), error
    assert "before tube P0001 was collected" in error["message"]

    csv = (
        f"{HEADER}\nP0001,negative,x,2022-04-02T04:47:00+08:00\n"
        # Seven minutes before the swab: within the clocks' tolerance.
        "N0001,negative,x,2022-04-02T05:05:00+08:00\n"
    )
    partly = await upload(client, town.operator, csv.encode())
    assert partly.status_code == 201, partly.text
    assert partly.json()["applied"] == 1 and partly.json()["error_count"] == 1
    [error] = partly.json()["errors"]
    assert (error["row"], error["column"], error["tube_code"]) == (2, "resulted_at", "P0001")
    now = await statuses(client, town, lab)
    assert {now[r] for r in lab.a} == {"sampled"} and {now[r] for r in lab.b} == {"negative"}


async def test_a_rounds_results_page_by_page(
    client: httpx.AsyncClient, town: Town, lab: Lab
) -> None:
    """A list longer than its limit answers a page and a cursor to the next (a page of a
    round's members and their directory rows was a 500 when a next page existed)."""
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        query = f"/v1/results?round_id={lab.round_id}&limit=3"
        listed = await client.get(
            query + (f"&cursor={cursor}" if cursor else ""), headers=town.operator
        )
        assert listed.status_code == 200, listed.text
        seen += [r["resident_id"] for r in listed.json()["items"]]
        cursor = listed.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(lab.a + lab.b + lab.c)


async def test_the_results_of_a_round_not_seen_or_not_there_are_a_404_naming_the_round(
    client: httpx.AsyncClient, town: Town, lab: Lab
) -> None:
    """Not an empty list: a round the caller does not see, or that does not exist, is not
    found, as every other round endpoint answers it."""
    from tests.support import committee_staff

    other = await make_compound(client, town.id, town.operator, code="L3")
    outsider = await committee_staff(client, town, other, "staff-l3")
    nowhere = uuid.uuid4()
    for round_id, headers in ((lab.round_id, outsider), (nowhere, town.operator)):
        listed = await client.get(f"/v1/results?round_id={round_id}", headers=headers)
        assert listed.status_code == 404, listed.text
        assert listed.json()["errors"] == [
            {"field": "round_id", "message": f"no round {round_id} in your scope"}
        ]
    mine = await client.get(f"/v1/results?round_id={lab.round_id}", headers=town.operator)
    assert mine.status_code == 200 and len(mine.json()["items"]) == 7


async def test_tube_codes_are_the_same_in_any_case(
    client: httpx.AsyncClient, town: Town, lab: Lab
) -> None:
    """Barcode labels are read in either case: a code is one tube whatever its case, when it
    is recorded, looked up or resulted (the pools were recorded as P0001, N0001, I0001)."""
    lower = {"tube_code": "p0001", "result": "positive", "lab": "Lab", "resulted_at": RESULTED}
    by_json = await client.post(
        "/v1/results/uploads", json={"results": [lower]}, headers=town.operator
    )
    assert by_json.status_code == 201, by_json.text
    assert by_json.json()["applied"] == 1
    by_csv = await upload(client, town.operator, results_csv([("n0001", "negative")]))
    assert by_csv.status_code == 201, by_csv.text
    assert by_csv.json()["applied"] == 1
    twice = await upload(
        client, town.operator, results_csv([("I0001", "invalid"), ("i0001", "invalid")])
    )
    assert twice.json()["applied"] == 1, twice.text
    assert [(e["row"], e["column"]) for e in twice.json()["errors"]] == [(3, "tube_code")]
    found = await client.get("/v1/tubes/p0001", headers=town.operator)
    assert found.status_code == 200, found.text
    assert (found.json()["code"], found.json()["status"]) == ("P0001", "positive")

    path = f"/v1/rounds/{lab.round_id}/tubes"
    first, second = lab.a[0], lab.a[1]
    retest = await client.post(
        path,
        json=tube("r-0001", [first], retest=True, collected_at=RETESTED),
        headers=town.operator,
    )
    assert retest.status_code == 201, retest.text
    assert retest.json()["code"] == "R-0001"
    resent = await client.post(
        path,
        json=tube("R-0001", [first], retest=True, collected_at=RETESTED),
        headers=town.operator,
    )
    assert resent.status_code == 201 and resent.json()["id"] == retest.json()["id"], resent.text
    taken = await client.post(
        path,
        json=tube("R-0001", [second], retest=True, collected_at=RETESTED),
        headers=town.operator,
    )
    assert taken.status_code == 409 and taken.json()["errors"][0]["field"] == "code", taken.text
    listed = await client.get(path, headers=town.operator)
    assert sorted(t["code"] for t in listed.json()["items"]) == [
        "I0001",
        "N0001",
        "P0001",
        "R-0001",
    ]
    resulted = await upload(
        client, town.operator, results_csv([("R-0001", "negative")], at=RETEST_RESULTED)
    )
    assert resulted.json()["applied"] == 1, resulted.text
