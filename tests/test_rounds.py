"""Rounds, tubes and door-to-door lists, from the registry's events to a sampler's phone."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cordon.platform import Platform
from services.testing.models import DirectoryPlace, DirectoryResident, DirectoryZone
from shared.auth import Principal
from tests.conftest import Town
from tests.support import (
    Compound,
    account,
    answered_as_first,
    commits_writing,
    committee_staff,
    eventually,
    make_compound,
    make_resident,
    post,
)

WINDOW = {"starts_at": "2022-04-02T05:00:00+08:00", "ends_at": "2022-04-02T11:00:00+08:00"}


async def directory_count(platform: Platform, model: Any) -> int:
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def in_directory(platform: Platform, *, residents: int, zones: int = 0) -> None:
    async def arrived() -> bool:
        return (
            await directory_count(platform, DirectoryResident) == residents
            and await directory_count(platform, DirectoryZone) == zones
        )

    await eventually(arrived, what=f"{residents} residents and {zones} zones in the directory")


class Night:
    """A compound of five: three in unit 1 (household 101), two in sealed unit 2 (household
    201), one of them bedridden."""

    def __init__(self, compound: Compound, residents: list[dict[str, Any]]) -> None:
        self.compound = compound
        self.unit1 = [r["id"] for r in residents[:3]]
        self.unit2 = [r["id"] for r in residents[3:]]
        self.bedridden = residents[4]["id"]


@pytest.fixture
async def night(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> AsyncIterator[Night]:
    compound = await make_compound(client, town.id, town.operator, code="C1")
    residents = [
        await make_resident(client, compound, town.operator, household="101", name=f"甲{n}")
        for n in range(3)
    ]
    residents.append(
        await make_resident(client, compound, town.operator, household="201", unit=1, name="乙")
    )
    residents.append(
        await make_resident(
            client,
            compound,
            town.operator,
            household="201",
            unit=1,
            name="丙",
            tags=["bedridden"],
        )
    )
    sealed = await client.post(
        "/v1/zones",
        json={
            "building_id": compound.building_id,
            "unit_id": compound.unit_ids[1],
            "level": "sealed",
            "reason": "positive neighbour",
        },
        headers=town.operator,
    )
    assert sealed.status_code in (200, 201), sealed.text
    await in_directory(platform, residents=5, zones=1)
    yield Night(compound, residents)


async def schedule(
    client: httpx.AsyncClient, town: Town, scope: dict[str, Any], *, pool_size: int = 10
) -> dict[str, Any]:
    body = {"town_id": str(town.id), "name": "Night round", "scope": scope, **WINDOW}
    response = await client.post(
        "/v1/rounds", json={**body, "pool_size": pool_size}, headers=town.operator
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def tube(code: str, members: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "member_ids": members,
        "collector": "Nurse Li",
        "collected_at": "2022-04-02T05:12:00+08:00",
        **extra,
    }


async def test_a_round_samples_a_compound_by_the_rules(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    assert round_["expected"] == 5 and round_["status"] == "scheduled"
    path = f"/v1/rounds/{round_['id']}/tubes"
    early = await client.post(path, json=tube("T0001", night.unit1), headers=town.operator)
    assert early.status_code == 409 and "not open" in early.json()["detail"]

    opened = await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    assert opened.json()["status"] == "open"

    pooled = await client.post(path, json=tube("T0001", night.unit1), headers=town.operator)
    assert pooled.status_code == 201, pooled.text
    assert pooled.json()["pooled"] and sorted(pooled.json()["member_ids"]) == sorted(night.unit1)
    again = await client.post(path, json=tube("T0001", night.unit1), headers=town.operator)
    assert again.status_code == 201 and again.json()["id"] == pooled.json()["id"]

    reused = await client.post(path, json=tube("T0001", night.unit2[:1]), headers=town.operator)
    assert reused.status_code == 409
    assert reused.json()["errors"] == [
        {"field": "code", "message": "tube code T0001 is already used"}
    ]
    sealed_pool = await client.post(path, json=tube("T0002", night.unit2), headers=town.operator)
    assert sealed_pool.status_code == 422
    assert sealed_pool.json()["errors"][0]["field"] == "member_ids.0"
    assert "sealed" in sealed_pool.json()["detail"]
    twice = await client.post(path, json=tube("T0003", night.unit1[:1]), headers=town.operator)
    assert twice.status_code == 409 and "already sampled" in twice.json()["detail"]

    single = await client.post(path, json=tube("T0004", night.unit2[:1]), headers=town.operator)
    assert single.status_code == 201 and not single.json()["pooled"]
    listed = await client.get(path, headers=town.operator)
    assert {t["code"] for t in listed.json()["items"]} == {"T0001", "T0004"}


async def test_bad_tubes_are_refused_naming_the_field(
    client: httpx.AsyncClient, town: Town, night: Night, platform: Platform
) -> None:
    other = await make_compound(client, town.id, town.operator, code="C2")
    stranger = await make_resident(client, other, town.operator, name="丁")
    await in_directory(platform, residents=6, zones=1)
    single_round = await schedule(
        client, town, {"kind": "buildings", "ids": [night.compound.building_id]}, pool_size=1
    )
    await client.post(f"/v1/rounds/{single_round['id']}/open", headers=town.operator)
    path = f"/v1/rounds/{single_round['id']}/tubes"

    over = await client.post(path, json=tube("S0001", night.unit1[:2]), headers=town.operator)
    assert over.status_code == 422 and "pool size 1" in over.json()["detail"]
    outside = await client.post(path, json=tube("S0002", [stranger["id"]]), headers=town.operator)
    assert outside.status_code == 422
    assert outside.json()["errors"][0]["field"] == "member_ids.0"
    assert "outside the round" in outside.json()["detail"]
    not_due = await client.post(
        path, json=tube("S0003", night.unit1[:1], retest=True), headers=town.operator
    )
    assert not_due.status_code == 422 and "no open retest" in not_due.json()["detail"]
    malformed = await client.post(path, json={"code": "x", "member_ids": []}, headers=town.operator)
    assert malformed.status_code == 422
    assert {e["field"] for e in malformed.json()["errors"]} >= {"code", "member_ids"}
    listed = await client.get(path, headers=town.operator)
    assert listed.json()["items"] == []


async def test_a_batch_keeps_its_good_tubes_and_names_the_bad_rows(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    batch = {
        "tubes": [
            tube("B0001", night.unit1),
            tube("B0002", night.unit2),
            tube("B0003", night.unit2[:1]),
            tube("B0003", night.unit2[1:]),
        ]
    }
    path = f"/v1/rounds/{round_['id']}/tubes/batch"
    first = await client.post(path, json=batch, headers=town.operator)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 2 and first.json()["unchanged"] == 0
    assert [(e["row"], e["field"]) for e in first.json()["errors"]] == [
        (1, "member_ids.0"),
        (3, "code"),
    ]
    resent = await client.post(path, json=batch, headers=town.operator)
    assert resent.json()["accepted"] == 0 and resent.json()["unchanged"] == 2
    tubes = await client.get(f"/v1/rounds/{round_['id']}/tubes", headers=town.operator)
    assert sorted(t["code"] for t in tubes.json()["items"]) == ["B0001", "B0003"]
    hopeless = await client.post(
        path, json={"tubes": [tube("B0009", night.unit1)]}, headers=town.operator
    )
    assert hopeless.status_code == 422


async def test_door_to_door_lists_sealed_and_bedridden_with_masked_phones(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    path = f"/v1/rounds/{round_['id']}/door-to-door"
    listed = await client.get(path, headers=town.operator)
    assert listed.status_code == 200, listed.text
    [building] = listed.json()
    assert building["building_id"] == night.compound.building_id
    by_id = {r["resident_id"]: r for r in building["residents"]}
    assert set(by_id) == set(night.unit2)
    assert by_id[night.bedridden]["reasons"] == ["sealed", "bedridden"]
    assert all("****" in r["phone"] for r in by_id.values())
    revealed = await client.get(path, params={"reveal": "true"}, headers=town.operator)
    assert revealed.json()[0]["residents"][0]["phone"] == "+8613812345678"


async def test_a_unit_released_from_its_buildings_seal_is_sampled_as_not_sealed(
    client: httpx.AsyncClient, town: Town, night: Night, platform: Platform
) -> None:
    # The whole building sealed, then unit 1 released to precaution by an operator's
    # explicit downgrade: its own zone wins over the building's, as the registry counts it.
    for unit_id, level, downgrade in (
        (None, "sealed", False),
        (night.compound.unit_ids[0], "precaution", True),
    ):
        changed = await client.post(
            "/v1/zones",
            json={
                "building_id": night.compound.building_id,
                "unit_id": unit_id,
                "level": level,
                "reason": "night",
                "downgrade": downgrade,
            },
            headers=town.operator,
        )
        assert changed.status_code in (200, 201), changed.text
    await in_directory(platform, residents=5, zones=3)
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    listed = await client.get(f"/v1/rounds/{round_['id']}/door-to-door", headers=town.operator)
    [building] = listed.json()
    assert {r["resident_id"] for r in building["residents"]} == set(night.unit2)
    path = f"/v1/rounds/{round_['id']}/tubes"
    pooled = await client.post(path, json=tube("R0001", night.unit1), headers=town.operator)
    assert pooled.status_code == 201, pooled.text
    still_sealed = await client.post(path, json=tube("R0002", night.unit2), headers=town.operator)
    assert still_sealed.status_code == 422 and "sealed" in still_sealed.json()["detail"]
    sealed_round = await schedule(
        client, town, {"kind": "zone_level", "zone_level": "sealed", "ids": []}
    )
    assert sealed_round["expected"] == len(night.unit2)


async def test_a_round_of_an_implausible_window_or_a_muddled_scope_is_refused(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    compounds = {"kind": "compounds", "ids": [night.compound.id]}
    for body in (
        {**WINDOW, "ends_at": "2023-05-07T11:00:00+08:00", "scope": compounds},
        {**WINDOW, "scope": {**compounds, "zone_level": "sealed"}},
    ):
        response = await client.post(
            "/v1/rounds",
            json={"town_id": str(town.id), "name": "Muddled", **body},
            headers=town.operator,
        )
        assert response.status_code == 422, response.text
    listed = await client.get("/v1/rounds", headers=town.operator)
    assert listed.json()["items"] == []


async def test_a_sampling_site_is_refused_outside_its_rounds_window_or_scope(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    other = await make_compound(client, town.id, town.operator, code="C2")
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    path = f"/v1/rounds/{round_['id']}/sites"

    def slot(starts: str, ends: str) -> dict[str, Any]:
        return {"starts_at": f"2022-04-02T{starts}+08:00", "ends_at": f"2022-04-02T{ends}+08:00"}

    refused = {
        "slots.0.ends_at": {"compound_id": night.compound.id, "slots": [slot("09:00", "08:00")]},
        "slots.1.starts_at": {
            "compound_id": night.compound.id,
            "slots": [slot("05:00", "08:00"), slot("03:00", "06:00")],
        },
        "slots.0.ends_at ": {"compound_id": night.compound.id, "slots": [slot("10:00", "13:00")]},
        "compound_id": {"compound_id": other.id, "slots": []},
    }
    for field, body in refused.items():
        response = await client.post(path, json={"name": "Gate 1", **body}, headers=town.operator)
        assert response.status_code == 422, (field, response.text)
        assert field.strip() in {e["field"] for e in response.json()["errors"]}, response.text
    good = {"name": "Gate 1", "compound_id": night.compound.id, "slots": [slot("05:00", "08:00")]}
    made = await client.post(path, json=good, headers=town.operator)
    assert made.status_code == 201, made.text
    listed = await client.get(path, headers=town.operator)
    assert [s["name"] for s in listed.json()] == ["Gate 1"]


async def test_committee_staff_see_and_sample_only_their_compounds(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    other = await make_compound(client, town.id, town.operator, code="C2")
    outsider = await committee_staff(client, town, other, "staff-c2")
    insider = await committee_staff(client, town, night.compound, "staff-c1")
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    path = f"/v1/rounds/{round_['id']}/tubes"
    theirs = await client.post(path, json=tube("X0001", night.unit1), headers=outsider)
    assert theirs.status_code == 404, theirs.text
    ours = await client.post(path, json=tube("X0001", night.unit1), headers=insider)
    assert ours.status_code == 201
    assert (await client.get(path, headers=outsider)).status_code == 404
    assert (await client.get("/v1/tubes/X0001", headers=outsider)).status_code == 404
    assert (
        await client.get(f"/v1/rounds/{round_['id']}/door-to-door", headers=outsider)
    ).status_code == 404
    town_wide = await client.post(
        "/v1/rounds",
        json={"town_id": str(town.id), "name": "All", "scope": {"kind": "town"}, **WINDOW},
        headers=insider,
    )
    assert town_wide.status_code == 403
    foreign = await client.post(
        "/v1/rounds",
        json={
            "town_id": str(town.id),
            "name": "Not mine",
            "scope": {"kind": "compounds", "ids": [night.compound.id]},
            **WINDOW,
        },
        headers=outsider,
    )
    assert foreign.status_code == 404 and foreign.json()["errors"][0]["field"] == "scope.ids.0"


async def test_a_tube_collected_outside_the_rounds_window_or_in_the_future_is_refused(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    path = f"/v1/rounds/{round_['id']}/tubes"
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    for collected_at, what in (
        ("2022-04-02T02:00:00+08:00", "window"),  # three hours before the round's window
        ("2022-04-02T13:00:00+08:00", "window"),  # two hours after it
        (later, "future"),
    ):
        body = tube("T0001", night.unit1, collected_at=collected_at)
        refused = await client.post(path, json=body, headers=town.operator)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "collected_at"
        assert what in refused.json()["detail"]
        batch = await client.post(f"{path}/batch", json={"tubes": [body]}, headers=town.operator)
        assert batch.json()["errors"][0]["field"] == "collected_at", batch.text
    # The stated tolerance for clocks: minutes past the window still belong to the round.
    late = tube("T0001", night.unit1, collected_at="2022-04-02T11:08:00+08:00")
    assert (await client.post(path, json=late, headers=town.operator)).status_code == 201


async def _people_of(
    client: httpx.AsyncClient, town: Town, compound: Compound, name: str
) -> dict[str, dict[str, str]]:
    """Committee staff, and a building leader and a volunteer of the compound's building."""
    h = town.operator
    signed_in = {"staff": await committee_staff(client, town, compound, f"{name}-staff")}
    for role in ("building_leader", "volunteer"):
        person = await post(
            client,
            "/v1/volunteers",
            {"compound_id": compound.id, "name": role, "kind": "service"},
            h,
        )
        body = {"person_kind": "volunteer", "person_id": person["id"]}
        await post(client, "/v1/assignments", {**body, "building_id": compound.building_id}, h)
        signed_in[role] = await account(client, town, username=f"{name}-{role}", role=role, **body)
    return signed_in


async def _two_committees_rounds(
    client: httpx.AsyncClient, town: Town, platform: Platform, night: Night
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Compound C1 (night's, five residents) and C2 (one) of two committees, their people,
    a round over C1 and a town-wide round."""
    other = await make_compound(client, town.id, town.operator, code="C2")
    await make_resident(client, other, town.operator, name="乙区居民")
    await in_directory(platform, residents=6, zones=1)
    theirs = await _people_of(client, town, other, "c2")
    ours = await _people_of(client, town, night.compound, "c1")
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    everyone = await schedule(client, town, {"kind": "town"})
    assert everyone["expected"] == 6
    return round_, everyone, ours, theirs


async def test_committee_staff_cannot_open_or_close_another_committees_round(
    client: httpx.AsyncClient, town: Town, platform: Platform, night: Night
) -> None:
    round_, everyone, ours, theirs = await _two_committees_rounds(client, town, platform, night)
    for action in ("open", "close"):
        for target in (round_, everyone):
            refused = await client.post(
                f"/v1/rounds/{target['id']}/{action}", headers=theirs["staff"]
            )
            assert refused.status_code in (403, 404), refused.text
    for target in (round_, everyone):
        status = await client.get(f"/v1/rounds/{target['id']}", headers=town.operator)
        assert status.json()["status"] == "scheduled"
    opened = await client.post(f"/v1/rounds/{round_['id']}/open", headers=ours["staff"])
    assert opened.status_code == 200 and opened.json()["status"] == "open"


async def test_rounds_outside_the_callers_scope_are_not_found_and_town_rounds_count_their_part(
    client: httpx.AsyncClient, town: Town, platform: Platform, night: Night
) -> None:
    round_, everyone, ours, theirs = await _two_committees_rounds(client, town, platform, night)
    for role, headers in theirs.items():
        listed = (await client.get("/v1/rounds", headers=headers)).json()["items"]
        # The town-wide round shows, counting only the caller's part of the town.
        assert [(r["id"], r["expected"]) for r in listed] == [(everyone["id"], 1)], role
        for tail in ("", "/sites", "/door-to-door", "/tubes", "/coverage", "/missed"):
            answer = await client.get(f"/v1/rounds/{round_['id']}{tail}", headers=headers)
            assert answer.status_code == 404, f"{role} GET {tail}: {answer.text}"
        one = await client.get(f"/v1/rounds/{everyone['id']}", headers=headers)
        assert one.json()["expected"] == 1, role
        coverage = await client.get(f"/v1/rounds/{everyone['id']}/coverage", headers=headers)
        assert coverage.json()["total"]["expected"] == 1, f"{role}: {coverage.text}"
    for role, headers in ours.items():
        listed = (await client.get("/v1/rounds", headers=headers)).json()["items"]
        assert {r["id"]: r["expected"] for r in listed} == {
            round_["id"]: 5,
            everyone["id"]: 5,
        }, role


async def test_a_town_round_over_two_committees_compounds_shows_each_only_its_part(
    client: httpx.AsyncClient, town: Town, platform: Platform, night: Night
) -> None:
    """The town office screens compounds of two committees in one round: each committee's
    staff, building leader and volunteer read it with only their own compound in its scope
    (they read the other committee's compound id) and only their residents expected, as its
    coverage counts them; the town office reads it whole."""
    other = await make_compound(client, town.id, town.operator, code="C2")
    await make_resident(client, other, town.operator, name="乙区居民")
    await in_directory(platform, residents=6, zones=1)
    ids = [night.compound.id, other.id]
    both = await schedule(client, town, {"kind": "compounds", "ids": ids})
    url = f"/v1/rounds/{both['id']}"
    whole = (await client.get(url, headers=town.operator)).json()
    assert (whole["scope"]["ids"], whole["expected"]) == (ids, 6)
    for compound, expected in ((night.compound, 5), (other, 1)):
        people = await _people_of(client, town, compound, compound.code.lower())
        for role, headers in people.items():
            shown = (await client.get(url, headers=headers)).json()
            assert (shown["scope"]["ids"], shown["expected"]) == ([compound.id], expected), role
            listed = (await client.get("/v1/rounds", headers=headers)).json()["items"]
            assert [(r["scope"]["ids"], r["expected"]) for r in listed] == [
                ([compound.id], expected)
            ], role
            coverage = (await client.get(f"{url}/coverage", headers=headers)).json()
            assert coverage["total"]["expected"] == expected, role


async def test_a_site_serving_buildings_of_a_compound_shows_a_building_leader_only_theirs(
    client: httpx.AsyncClient, town: Town, platform: Platform, night: Night
) -> None:
    """A site placed at its compound serves two buildings: the leader of one reads it (and
    its slots) with only their building (they read the other building's id); committee
    staff and the town office, who manage the compound, read it whole. A site serving only
    the other building is not theirs: it is not listed to them (with its buildings hidden
    it would read as serving the whole compound)."""
    second = await post(
        client,
        "/v1/buildings",
        {"compound_id": night.compound.id, "code": "2", "units": ["1"]},
        town.operator,
    )

    async def arrived() -> bool:
        async with platform.runtime("testing").uow(Principal.system()) as uow:
            return await uow.session.get(DirectoryPlace, uuid.UUID(second["id"])) is not None

    await eventually(arrived, what="building 2 in the directory")
    both = [night.compound.building_id, second["id"]]
    slots = [
        {**WINDOW, "ends_at": "2022-04-02T08:00:00+08:00", "building_ids": both},
        {**WINDOW, "starts_at": "2022-04-02T08:00:00+08:00", "building_ids": [second["id"]]},
    ]
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    path = f"/v1/rounds/{round_['id']}/sites"
    site = {"name": "Gate 1", "compound_id": night.compound.id, "building_ids": both}
    made = await client.post(path, json={**site, "slots": slots}, headers=town.operator)
    assert made.status_code == 201, made.text
    elsewhere = {**site, "name": "Gate 2", "building_ids": [second["id"]]}
    assert (await client.post(path, json=elsewhere, headers=town.operator)).status_code == 201
    people = await _people_of(client, town, night.compound, "c1")
    for headers in (town.operator, people["staff"]):
        whole, other = (await client.get(path, headers=headers)).json()
        assert other["building_ids"] == [second["id"]]
        assert whole["building_ids"] == both
        assert [s["building_ids"] for s in whole["slots"]] == [both, [second["id"]]]
    (part,) = (await client.get(path, headers=people["building_leader"])).json()
    assert part["building_ids"] == [night.compound.building_id]
    # The slot for building 2 alone is not theirs; the shared one names only their building.
    assert [s["building_ids"] for s in part["slots"]] == [[night.compound.building_id]]


async def test_single_tubes_sent_together_are_each_answered_as_if_sent_alone(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    """A sampling site's phones send at the same moment: tubes arriving together share a
    transaction, yet each request gets the answer it would get alone, and nothing is
    recorded twice. A caller who may not see the round is refused, whoever sends with them."""
    other = await make_compound(client, town.id, town.operator, code="C2")
    outsider = await committee_staff(client, town, other, "staff-c2")
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    path = f"/v1/rounds/{round_['id']}/tubes"
    a, b, c = night.unit1
    d, e = night.unit2
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    bodies = {
        "first": tube("G0001", [a]),
        "resent": tube("G0001", [a]),
        "b": tube("G0002", [b]),
        "code taken": tube("G0002", [c]),
        "b again": tube("G0003", [b]),
        "sealed pool": tube("G0004", [d, e]),
        "future": tube("G0005", [d], collected_at=later),
    }
    sent = [client.post(path, json=body, headers=town.operator) for body in bodies.values()]
    *answered, foreign = await asyncio.gather(
        *sent, client.post(path, json=tube("G0009", [e]), headers=outsider)
    )
    assert foreign.status_code == 404, foreign.text
    answers = dict(zip(bodies, answered, strict=True))
    status = {name: answer.status_code for name, answer in answers.items()}
    assert status["first"] == status["resent"] == 201
    assert answers["first"].json()["id"] == answers["resent"].json()["id"]
    # Which of two clashing tubes comes first is the network's choice: one of each pair is
    # recorded, the other refused as it would be alone after it.
    assert sorted([status["b"], status["code taken"]]) == [201, 409]
    assert sorted([status["b"], status["b again"]]) == [201, 409]
    for name in ("b", "code taken", "b again"):
        if status[name] == 409:
            assert "already" in answers[name].json()["detail"], answers[name].text
    assert status["sealed pool"] == 422 and "sealed" in answers["sealed pool"].json()["detail"]
    assert status["future"] == 422
    assert answers["future"].json()["errors"][0]["field"] == "collected_at"
    for name, answer in answers.items():
        if answer.status_code == 201:
            assert answer.json()["member_ids"] == bodies[name]["member_ids"], name
    listed = (await client.get(path, headers=town.operator)).json()["items"]
    recorded = {answer.json()["code"] for answer in answers.values() if answer.status_code == 201}
    assert sorted(t["code"] for t in listed) == sorted(recorded)
    members = [m for t in listed for m in t["member_ids"]]
    # Every resident sampled once, in one tube, never two.
    sampled = {a, b} | ({c} if status["code taken"] == 201 else set())
    assert sorted(members) == sorted(sampled)
    coverage = await client.get(f"/v1/rounds/{round_['id']}/coverage", headers=town.operator)
    assert coverage.json()["total"]["sampled"] == len(members)


async def test_keyed_single_tubes_sent_together_share_commits_and_each_resend_gets_its_first_answer(
    client: httpx.AsyncClient, town: Town, night: Night, platform: Platform
) -> None:
    """Sampling phones send a key with each tube and resend it on a weak network. Keyed
    tubes arriving together are written in fewer transactions than requests, each answer
    stored with its group; a key sent twice within the burst, and every key resent
    afterwards, gets the first answer, and no one is sampled twice. The same key with
    another tube is refused."""
    more = [
        await make_resident(client, night.compound, town.operator, household="102", name=f"丁{n}")
        for n in range(9)
    ]
    await in_directory(platform, residents=14, zones=1)
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    path = f"/v1/rounds/{round_['id']}/tubes"
    residents = [*night.unit1, *(r["id"] for r in more)]
    bodies = [tube(f"K{n:04}", [resident]) for n, resident in enumerate(residents)]

    async def send(n: int, body: dict[str, Any]) -> httpx.Response:
        headers = {**town.operator, "Idempotency-Key": f"scan-{n}"}
        return await client.post(path, json=body, headers=headers)

    with commits_writing(platform, "testing", "tubes") as transactions:
        *first, twice = await asyncio.gather(
            *(send(n, body) for n, body in enumerate(bodies)), send(0, bodies[0])
        )
    assert [r.status_code for r in [*first, twice]] == [201] * 13, [r.text for r in first]
    assert [r.json()["code"] for r in first] == [body["code"] for body in bodies]
    assert twice.json() == first[0].json()
    assert 1 <= transactions[0] < 12
    again = await asyncio.gather(*(send(n, body) for n, body in enumerate(bodies)))
    answered_as_first(first, again)
    listed = (await client.get(path, headers=town.operator)).json()["items"]
    assert sorted(m for t in listed for m in t["member_ids"]) == sorted(residents)
    other = await send(3, tube("K9999", [night.unit2[0]]))
    assert other.status_code == 409 and "Idempotency-Key" in other.text


async def test_blank_names_of_a_round_a_site_and_a_collector_are_refused(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    """A name of only spaces names no one: a 422 naming the field, never a round, a site or
    a tube nobody can tell apart; a name with spaces around it is kept without them."""
    scope = {"kind": "compounds", "ids": [str(night.compound.id)]}
    body = {"town_id": str(town.id), "name": "   ", "scope": scope, **WINDOW}
    blank_round = await client.post("/v1/rounds", json=body, headers=town.operator)
    assert blank_round.status_code == 422, blank_round.text
    assert blank_round.json()["errors"][0]["field"] == "name"

    round_ = await schedule(client, town, scope)
    site = {"name": "  ", "compound_id": str(night.compound.id)}
    blank_site = await client.post(
        f"/v1/rounds/{round_['id']}/sites", json=site, headers=town.operator
    )
    assert blank_site.status_code == 422, blank_site.text
    assert blank_site.json()["errors"][0]["field"] == "name"

    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    path = f"/v1/rounds/{round_['id']}/tubes"
    blank = await client.post(
        path, json=tube("B0001", night.unit1[:1], collector="   "), headers=town.operator
    )
    assert blank.status_code == 422, blank.text
    assert blank.json()["errors"][0]["field"] == "collector"
    batch = await client.post(
        f"{path}/batch",
        json={"tubes": [tube("B0002", night.unit1[1:2], collector=" ")]},
        headers=town.operator,
    )
    assert batch.status_code == 422, batch.text
    assert batch.json()["errors"][0]["field"] == "tubes.0.collector"
    padded = await client.post(
        path, json=tube("B0003", night.unit1[2:3], collector=" Nurse Li "), headers=town.operator
    )
    assert padded.status_code == 201, padded.text
    assert padded.json()["collector"] == "Nurse Li"


async def test_a_door_to_door_list_of_a_building_not_in_scope_is_a_404_naming_it(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    """A leader who asks for a building that is no building of theirs (a mistyped id, a
    unit's, another compound's) is told so, as ``/missed`` does, not handed an empty list
    that reads as nobody to visit."""
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    path = f"/v1/rounds/{round_['id']}/door-to-door"
    for wrong in (str(uuid.uuid4()), night.compound.unit_ids[1], night.compound.id):
        listed = await client.get(path, params={"building_id": wrong}, headers=town.operator)
        assert listed.status_code == 404, listed.text
        assert listed.json()["errors"][0]["field"] == "building_id"
    right = {"building_id": night.compound.building_id}
    listed = await client.get(path, params=right, headers=town.operator)
    assert listed.status_code == 200 and len(listed.json()[0]["residents"]) == 2


async def test_an_open_round_follows_residents_registered_and_moved_during_the_night(
    client: httpx.AsyncClient, town: Town, night: Night, platform: Platform
) -> None:
    """A visitor registered at 2 a.m. is sampled in the round already open; a resident moved
    before being sampled is counted where they live now, and leaves a round whose scope no
    longer covers them; one already sampled stays counted where the swab was taken."""
    other = await make_compound(client, town.id, town.operator, code="C2")
    elsewhere = await make_resident(client, other, town.operator, household="301", name="戊")
    await in_directory(platform, residents=6, zones=1)
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    opened = await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    assert opened.status_code == 200, opened.text
    coverage_url = f"/v1/rounds/{round_['id']}/coverage?by=unit"

    async def expected_by_unit() -> tuple[int, dict[str, int]]:
        shown = (await client.get(coverage_url, headers=town.operator)).json()
        units = {g["place_id"]: g["expected"] for g in shown["groups"]}
        return shown["total"]["expected"], units

    assert await expected_by_unit() == (
        5,
        {night.compound.unit_ids[0]: 3, night.compound.unit_ids[1]: 2},
    )

    visitor = await make_resident(client, night.compound, town.operator, name="丁")
    await in_directory(platform, residents=7, zones=1)

    async def counted(total: int, units: dict[str, int]) -> bool:
        return await expected_by_unit() == (total, units)

    unit0, unit1 = night.compound.unit_ids
    await eventually(lambda: counted(6, {unit0: 4, unit1: 2}), what="the visitor in the round")
    tubes = f"/v1/rounds/{round_['id']}/tubes"
    sampled = await client.post(tubes, json=tube("LATE-1", [visitor["id"]]), headers=town.operator)
    assert sampled.status_code == 201, sampled.text

    async def move(resident_id: str, household_id: str) -> None:
        moved = await client.post(
            f"/v1/residents/{resident_id}/move",
            json={"household_id": household_id, "reason": "moved in with family"},
            headers=town.operator,
        )
        assert moved.status_code == 200, moved.text

    sealed_household = await client.get(f"/v1/residents/{night.unit2[0]}", headers=town.operator)
    await move(night.unit1[0], sealed_household.json()["household_id"])
    await eventually(lambda: counted(6, {unit0: 3, unit1: 3}), what="the move within the round")

    await move(night.unit1[1], elsewhere["household_id"])
    await move(visitor["id"], elsewhere["household_id"])
    # 甲1 left before being sampled; 丁 was sampled here and stays counted here.
    await eventually(lambda: counted(5, {unit0: 2, unit1: 3}), what="the moves out of the scope")
    gone = await client.post(tubes, json=tube("GONE-1", [night.unit1[1]]), headers=town.operator)
    assert gone.status_code == 422 and "outside the round's scope" in gone.json()["detail"]


async def test_an_open_round_of_sealed_areas_follows_the_seals_of_the_night(
    client: httpx.AsyncClient, town: Town, night: Night, platform: Platform
) -> None:
    """A unit sealed at 3 a.m. is sampled in the open round of sealed areas; a unit whose
    seal is lifted before its residents were sampled leaves it."""
    round_ = await schedule(client, town, {"kind": "zone_level", "zone_level": "sealed", "ids": []})
    assert round_["expected"] == 2
    opened = await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    assert opened.status_code == 200, opened.text

    async def expected(count: int) -> bool:
        url = f"/v1/rounds/{round_['id']}/coverage"
        shown = await client.get(url, headers=town.operator)
        return bool(shown.json()["total"]["expected"] == count)

    unit0, unit1 = night.compound.unit_ids
    zone = {"building_id": night.compound.building_id}
    await post(
        client,
        "/v1/zones",
        {**zone, "unit_id": unit0, "level": "sealed", "reason": "case"},
        town.operator,
    )
    await eventually(lambda: expected(5), what="the newly sealed unit in the round")
    await post(
        client,
        "/v1/zones",
        {**zone, "unit_id": unit1, "level": None, "reason": "cleared"},
        town.operator,
    )
    await eventually(lambda: expected(3), what="the unit whose seal was lifted out of the round")


async def test_the_same_tube_twice_in_a_batch_is_unchanged_and_a_different_one_an_error(
    client: httpx.AsyncClient, town: Town, night: Night
) -> None:
    """A phone resends a scan inside its offline batch: the identical second row is the
    same tube, answered unchanged; the same code with other content is still an error."""
    round_ = await schedule(client, town, {"kind": "compounds", "ids": [night.compound.id]})
    await client.post(f"/v1/rounds/{round_['id']}/open", headers=town.operator)
    d, e = night.unit2
    batch = {
        "tubes": [
            tube("S0001", night.unit1),
            tube("S0001", night.unit1),
            tube("S0002", [d]),
            tube("S0002", [e]),
            tube("S0003", [e], collector="Nurse Wang"),
            tube("S0003", [e], collector="Nurse Zhao"),
        ]
    }
    path = f"/v1/rounds/{round_['id']}/tubes/batch"
    first = await client.post(path, json=batch, headers=town.operator)
    assert first.status_code == 200, first.text
    assert (first.json()["accepted"], first.json()["unchanged"]) == (3, 1), first.text
    errors = first.json()["errors"]
    assert [(e["row"], e["code"], e["field"]) for e in errors] == [
        (3, "S0002", "code"),
        (5, "S0003", "code"),
    ]
    assert all("twice in the batch" in e["message"] for e in errors)
    tubes = await client.get(f"/v1/rounds/{round_['id']}/tubes", headers=town.operator)
    assert sorted(t["code"] for t in tubes.json()["items"]) == ["S0001", "S0002", "S0003"]
    resent = await client.post(path, json={"tubes": batch["tubes"][:2]}, headers=town.operator)
    assert (resent.json()["accepted"], resent.json()["unchanged"]) == (0, 2), resent.text
    assert resent.json()["errors"] == []
