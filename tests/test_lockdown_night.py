"""The lockdown night, end to end through the API and the real bus: a demo compound is
screened in pools, one pool is positive, its members are retested door to door, one retest
is a case, the registry seals the case's unit, the contacts are listed and the coverage is
right to the person."""

from collections import defaultdict
from typing import Any

import httpx

from cordon.platform import Platform
from services.registry.demo import ensure_demo_town
from services.testing.models import DirectoryResident
from tests.conftest import sign_in
from tests.support import eventually
from tests.test_results import RETEST_RESULTED, RETESTED, results_csv, upload
from tests.test_rounds import WINDOW, directory_count, tube


async def every_page(
    client: httpx.AsyncClient, path: str, headers: Any, **filters: str
) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        params = {"limit": 500, **filters} | ({"cursor": cursor} if cursor else {})
        page = await client.get(path, params=params, headers=headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def pools_by_unit(missed: list[dict[str, Any]]) -> list[list[str]]:
    """What the sampling site does: the residents of a unit, ten to a tube."""
    units: dict[Any, list[str]] = defaultdict(list)
    for resident in missed:
        units[resident["unit_id"]].append(resident["resident_id"])
    return [people[n : n + 10] for people in units.values() for n in range(0, len(people), 10)]


async def record(
    client: httpx.AsyncClient, round_id: str, tubes: list[dict[str, Any]], headers: Any
) -> None:
    for n in range(0, len(tubes), 200):
        answer = await client.post(
            f"/v1/rounds/{round_id}/tubes/batch",
            json={"tubes": tubes[n : n + 200]},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["errors"] == [] and answer.json()["accepted"] == len(
            tubes[n : n + 200]
        )


async def test_a_lockdown_night(
    client: httpx.AsyncClient, platform: Platform, workers: None
) -> None:
    login = await ensure_demo_town(platform.runtime("registry"), size=1_500)
    assert login is not None
    operator = await sign_in(client, login.username, login.password)
    counts = (await client.get("/v1/residents/counts", headers=operator)).json()
    everyone = sum(c["residents"] for c in counts)

    async def directory_complete() -> bool:
        return await directory_count(platform, DirectoryResident) == everyone

    await eventually(directory_complete, within=60, what="the testing directory")
    biggest = max(counts, key=lambda c: c["residents"])
    compound_id, size = biggest["compound_id"], biggest["residents"]
    [town] = (await client.get("/v1/towns", headers=operator)).json()

    scheduled = await client.post(
        "/v1/rounds",
        json={
            "town_id": town["id"],
            "name": "Closed at 01:30, sampled from 05:00",
            "scope": {"kind": "compounds", "ids": [compound_id]},
            **WINDOW,
        },
        headers=operator,
    )
    assert scheduled.status_code == 201, scheduled.text
    round_id = scheduled.json()["id"]
    assert scheduled.json()["expected"] == size
    await client.post(f"/v1/rounds/{round_id}/open", headers=operator)

    missed = await every_page(client, f"/v1/rounds/{round_id}/missed", operator)
    assert len(missed) == size
    pools = pools_by_unit(missed)
    tubes = [tube(f"N{n:05d}", members) for n, members in enumerate(pools)]
    await record(client, round_id, tubes, operator)
    sampled = await client.get(f"/v1/rounds/{round_id}/coverage", headers=operator)
    assert sampled.json()["total"] | {} == {
        "expected": size,
        "sampled": size,
        "resulted": 0,
        "positive": 0,
        "missed": 0,
    }

    positive_pool = next(members for members in pools if len(members) > 1)
    lab = [
        (t["code"], "positive" if t["member_ids"] == positive_pool else "negative") for t in tubes
    ]
    report = await upload(client, operator, results_csv(lab))
    assert report.status_code == 201, report.text
    assert (report.json()["applied"], report.json()["positive"]) == (len(tubes), 1)

    retests = await every_page(client, "/v1/tasks", operator, kind="retest", status="open")
    assert sorted(t["resident_id"] for t in retests) == sorted(positive_pool)
    singles = [
        tube(f"R{n:05d}", [r], retest=True, collected_at=RETESTED)
        for n, r in enumerate(positive_pool)
    ]
    await record(client, round_id, singles, operator)
    case_resident = positive_pool[0]
    retested = [(t["code"], "positive" if n == 0 else "negative") for n, t in enumerate(singles)]
    retest_results = results_csv(retested, at=RETEST_RESULTED)
    assert (await upload(client, operator, retest_results)).json()["applied"] == len(singles)

    [case] = (await client.get("/v1/cases", headers=operator)).json()["items"]
    assert case["resident_id"] == case_resident and case["transfer"]["status"] == "pending"
    resident = (await client.get(f"/v1/residents/{case_resident}", headers=operator)).json()
    household = await every_page(
        client, "/v1/residents", operator, household_id=resident["household_id"]
    )
    contacts = (await client.get(f"/v1/cases/{case['id']}/contacts", headers=operator)).json()
    close = {c["resident_id"] for c in contacts if c["kind"] == "close"}
    assert close == {r["id"] for r in household} - {case_resident}

    async def unit_sealed() -> bool:
        zones = await client.get(
            "/v1/zones", params={"building_id": resident["building_id"]}, headers=operator
        )
        return any(
            z["unit_id"] == resident["unit_id"] and z["level"] == "sealed"
            for z in zones.json()["items"]
        )

    await eventually(unit_sealed, what="the registry to seal the case's unit")
    history = await client.get(
        "/v1/zones/history", params={"building_id": resident["building_id"]}, headers=operator
    )
    seals = [h for h in history.json() if h["unit_id"] == resident["unit_id"]]
    assert len(seals) == 1 and case["id"] in seals[0]["reason"]

    by_unit = await client.get(
        f"/v1/rounds/{round_id}/coverage",
        params={"by": "unit", "compound_id": compound_id},
        headers=operator,
    )
    coverage = by_unit.json()
    assert coverage["total"] == {
        "expected": size,
        "sampled": size,
        "resulted": size,
        "positive": 1,
        "missed": 0,
    }
    positive_units = [g["place_id"] for g in coverage["groups"] if g["positive"]]
    assert positive_units == [resident["unit_id"]]
    statuses = {
        r["resident_id"]: r["status"]
        for r in await every_page(client, "/v1/results", operator, round_id=round_id)
    }
    assert statuses.pop(case_resident) == "positive"
    assert set(statuses.values()) == {"negative"} and len(statuses) == size - 1
