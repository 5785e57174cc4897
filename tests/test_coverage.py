"""Coverage of rounds to the person, the lists of the missed as each role may see them, and
the compound's clock towards epidemic-free."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from cordon.platform import Platform
from services.testing.clocks.endpoints import ANNOUNCE_ELIGIBLE
from services.testing.models import Case, MemberStatus, RoundMember, Tube, kernel
from shared.auth import Principal, Role, Scope, ScopeKind, issue_token
from shared.contracts.registry import PlaceRecord, PlaceRegistered
from shared.events import Envelope
from tests.conftest import Town
from tests.support import (
    Compound,
    committee_staff,
    id_number,
    make_compound,
    make_resident,
    post,
)
from tests.test_rounds import in_directory, tube


@dataclass
class Block:
    """Compound C1 of twelve in two buildings, and C2 of one under another committee.

    Building 1: unit 1 holds a0–a3 (households 101, 102), unit 2 holds b0, b1.
    Building 2: unit 1 holds c0–c2, unit 2 holds d0 and the bedridden d1, unit 3 holds e0.
    """

    c1: Compound
    b2: Compound
    c2: Compound
    people: dict[str, str]
    units: dict[str, str]
    grid: uuid.UUID
    microgrid: uuid.UUID

    def ids(self, *names: str) -> set[str]:
        return {self.people[n] for n in names}


async def _residents(
    client: httpx.AsyncClient, town: Town, compound: Compound, spec: list[tuple[str, str, int]]
) -> dict[str, str]:
    made = {}
    for name, household, unit in spec:
        tags = ["bedridden"] if name == "d1" else []
        resident = await make_resident(
            client, compound, town.operator, household=household, unit=unit, name=name, tags=tags
        )
        made[name] = resident["id"]
    return made


async def _grid(platform: Platform, town: Town, code: str, buildings: list[str]) -> uuid.UUID:
    """A grid as the registry publishes it (a place of kind grid with its buildings)."""
    runtime = platform.runtime("testing")
    grid_id = uuid.uuid4()
    place = PlaceRecord(
        kind="grid",
        id=grid_id,
        town_id=town.id,
        code=code,
        name=f"Grid {code}",
        building_ids=[uuid.UUID(b) for b in buildings],
    )
    envelope = Envelope.wrap(PlaceRegistered(place=place), producer="registry", correlation_id="t")
    [directory] = runtime.spec.consumers
    await runtime.process(directory, envelope, queue="test")
    return grid_id


async def _block(client: httpx.AsyncClient, town: Town, platform: Platform) -> Block:
    c1 = await make_compound(client, town.id, town.operator, code="C1")
    building = await post(
        client,
        "/v1/buildings",
        {"compound_id": c1.id, "code": "2", "units": ["1", "2", "3"]},
        town.operator,
    )
    units = await client.get(f"/v1/units?building_id={building['id']}", headers=town.operator)
    unit_ids = [u["id"] for u in sorted(units.json()["items"], key=lambda u: u["code"])]
    b2 = Compound(c1.committee_id, c1.id, c1.code, building["id"], "2", unit_ids)
    c2 = await make_compound(client, town.id, town.operator, code="C2")
    people = await _residents(
        client,
        town,
        c1,
        [
            *[("a0", "101", 0), ("a1", "101", 0), ("a2", "101", 0), ("a3", "102", 0)],
            *[("b0", "201", 1), ("b1", "201", 1)],
        ],
    )
    people |= await _residents(
        client,
        town,
        b2,
        [
            *[("c0", "101", 0), ("c1", "101", 0), ("c2", "101", 0)],
            *[("d0", "201", 1), ("d1", "201", 1), ("e0", "301", 2)],
        ],
    )
    people |= await _residents(client, town, c2, [("x0", "101", 0)])
    await in_directory(platform, residents=13)
    units_by_name = {
        "1-1": c1.unit_ids[0],
        "1-2": c1.unit_ids[1],
        "2-1": unit_ids[0],
        "2-2": unit_ids[1],
        "2-3": unit_ids[2],
    }
    grid = await _grid(platform, town, "G1", [c1.building_id, b2.building_id])
    microgrid = await _grid(platform, town, "G1.1", [b2.building_id])
    return Block(c1, b2, c2, people, units_by_name, grid, microgrid)


@pytest.fixture
async def block(client: httpx.AsyncClient, town: Town, platform: Platform, workers: None) -> Block:
    return await _block(client, town, platform)


async def schedule(
    client: httpx.AsyncClient, town: Town, compounds: list[str], *, day: int, name: str
) -> str:
    starts = datetime(2022, 4, 1, 5, tzinfo=UTC) + timedelta(days=day)
    body = {
        "town_id": str(town.id),
        "name": name,
        "scope": {"kind": "compounds", "ids": compounds},
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=6)).isoformat(),
    }
    created = await post(client, "/v1/rounds", body, town.operator)
    await post(client, f"/v1/rounds/{created['id']}/open", {}, town.operator)
    return str(created["id"])


async def sample(
    client: httpx.AsyncClient, town: Town, round_id: str, tubes: dict[str, set[str]]
) -> None:
    """Record the tubes as swabbed in the round's first minutes."""
    round_ = (await client.get(f"/v1/rounds/{round_id}", headers=town.operator)).json()
    at = (datetime.fromisoformat(round_["starts_at"]) + timedelta(minutes=12)).isoformat()
    for code, members in tubes.items():
        body = tube(code, sorted(members), collected_at=at)
        await post(client, f"/v1/rounds/{round_id}/tubes", body, town.operator)


async def lab_result(platform: Platform, code: str, result: str) -> None:
    """What the results upload does to a tube and its members (it is built elsewhere): a
    positive pool puts its members under retest, a positive single tube is a case, an
    invalid tube needs a resample."""
    at = datetime(2022, 4, 2, 14, tzinfo=UTC)
    async with platform.runtime("testing").uow(Principal.system("lab")) as uow:
        found = await uow.session.scalar(select(Tube).where(Tube.code == code))
        assert found is not None
        found.status, found.resulted_at = result, at
        status = {
            "negative": MemberStatus.negative,
            "invalid": MemberStatus.resample_required,
            "positive": MemberStatus.retest_required if found.pooled else MemberStatus.positive,
        }[result]
        await uow.session.execute(
            update(RoundMember)
            .where(RoundMember.tube_id == found.id)
            .values(status=status.value, resulted_at=at)
        )
        if status is MemberStatus.positive:
            member = await uow.session.scalar(
                select(RoundMember).where(RoundMember.tube_id == found.id)
            )
            assert member is not None
            uow.session.add(case_of(member, confirmed_at=at))
        await uow.commit()


def case_of(member: RoundMember, *, confirmed_at: datetime) -> Case:
    return Case(
        resident_id=member.resident_id,
        household_id=member.household_id,
        unit_id=member.unit_id,
        town_id=member.town_id,
        compound_id=member.compound_id,
        building_id=member.building_id,
        round_id=member.round_id,
        tube_id=member.tube_id,
        source="single_tube",
        confirmed_at=confirmed_at,
        transfer_status="pending",
        transfer_due_at=confirmed_at + timedelta(hours=12),
    )


@pytest.fixture
async def sampled(
    client: httpx.AsyncClient, town: Town, platform: Platform, block: Block
) -> tuple[Block, str]:
    """Round 1 over both compounds: b0, b1, d1 missed; a0–a3 in a positive pool; c0–c2
    negative; d0 a positive single tube (a case); e0 an invalid tube; x0 at the lab."""
    round_id = await schedule(client, town, [block.c1.id, block.c2.id], day=1, name="Round 1")
    await sample(
        client,
        town,
        round_id,
        {
            "P0001": block.ids("a0", "a1", "a2", "a3"),
            "P0002": block.ids("c0", "c1", "c2"),
            "S0001": block.ids("d0"),
            "S0002": block.ids("e0"),
            "S0003": block.ids("x0"),
        },
    )
    for code, result in (
        ("P0001", "positive"),
        ("P0002", "negative"),
        ("S0001", "positive"),
        ("S0002", "invalid"),
    ):
        await lab_result(platform, code, result)
    return block, round_id


def tallies(coverage: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    keys = ("expected", "sampled", "resulted", "positive", "missed")
    by_code = {g["code"] if g["kind"] != "unit" else g["name"]: g for g in coverage["groups"]}
    out = {code: tuple(g[k] for k in keys) for code, g in by_code.items()}
    out["total"] = tuple(coverage["total"][k] for k in keys)
    return out


async def test_coverage_counts_every_person_once_per_place(
    client: httpx.AsyncClient, town: Town, sampled: tuple[Block, str]
) -> None:
    block, round_id = sampled
    path = f"/v1/rounds/{round_id}/coverage"

    async def coverage(**params: str) -> dict[str, tuple[int, ...]]:
        response = await client.get(path, params=params, headers=town.operator)
        assert response.status_code == 200, response.text
        return tallies(response.json())

    #                      expected, sampled, resulted, positive, missed
    assert await coverage(by="compound") == {
        "C1": (12, 9, 8, 5, 3),
        "C2": (1, 1, 0, 0, 0),
        "total": (13, 10, 8, 5, 3),
    }
    assert await coverage(by="building", compound_id=block.c1.id) == {
        "1": (6, 4, 4, 4, 2),
        "2": (6, 5, 4, 1, 1),
        "total": (12, 9, 8, 5, 3),
    }
    assert await coverage(by="unit", compound_id=block.c1.id) == {
        "1-1": (4, 4, 4, 4, 0),
        "1-2": (2, 0, 0, 0, 2),
        "2-1": (3, 3, 3, 0, 0),
        "2-2": (2, 1, 1, 1, 1),
        "2-3": (1, 1, 0, 0, 0),
        "total": (12, 9, 8, 5, 3),
    }
    assert await coverage(by="unit", building_id=block.b2.building_id) == {
        "2-1": (3, 3, 3, 0, 0),
        "2-2": (2, 1, 1, 1, 1),
        "2-3": (1, 1, 0, 0, 0),
        "total": (6, 5, 4, 1, 1),
    }
    # A building in a grid and its microgrid counts in both; C2's building in no grid
    # counts only in the total.
    assert await coverage(by="grid") == {
        "G1": (12, 9, 8, 5, 3),
        "G1.1": (6, 5, 4, 1, 1),
        "total": (13, 10, 8, 5, 3),
    }
    grids = (await client.get(path, params={"by": "grid"}, headers=town.operator)).json()
    microgrid = next(g for g in grids["groups"] if g["code"] == "G1.1")
    assert microgrid["place_id"] == str(block.microgrid)

    wrong = await client.get(path, params={"by": "street"}, headers=town.operator)
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "query.by"
    not_a_compound = await client.get(
        path, params={"compound_id": block.c1.building_id}, headers=town.operator
    )
    assert not_a_compound.status_code == 404
    assert not_a_compound.json()["errors"][0]["field"] == "compound_id"
    unknown = await client.get(f"/v1/rounds/{uuid.uuid4()}/coverage", headers=town.operator)
    assert unknown.status_code == 404


async def test_a_compound_page_reads_its_open_round_by_building_and_unit_at_once(
    client: httpx.AsyncClient, town: Town, platform: Platform, sampled: tuple[Block, str]
) -> None:
    """The open round most recently opened with members of the compound, and its coverage by
    building and by unit: exactly what the round's coverage answers for each, for whoever
    asks (a building leader sees their building only)."""
    block, round_1 = sampled
    path = "/v1/coverage/open-round"
    leader = token(platform, town, Role.building_leader, block)

    async def both(round_id: str, headers: dict[str, str], compound_id: str) -> None:
        answer = await client.get(path, params={"compound_id": compound_id}, headers=headers)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["compound_id"] == compound_id and got["round"]["id"] == round_id
        for by, key in (("building", "buildings"), ("unit", "units")):
            alone = await client.get(
                f"/v1/rounds/{round_id}/coverage",
                params={"by": by, "compound_id": compound_id},
                headers=headers,
            )
            assert got[key] == alone.json(), by

    await both(round_1, town.operator, block.c1.id)
    await both(round_1, leader, block.c1.id)
    opened = await client.get(path, params={"compound_id": block.c1.id}, headers=leader)
    assert tallies(opened.json()["units"]) == {
        "1-1": (4, 4, 4, 4, 0),
        "1-2": (2, 0, 0, 0, 2),
        "total": (6, 4, 4, 4, 2),
    }
    # A round opened later over C2 alone leaves C1 with round 1; one over C1 takes over.
    round_c2 = await schedule(client, town, [block.c2.id], day=2, name="C2 only")
    await both(round_1, town.operator, block.c1.id)
    await both(round_c2, town.operator, block.c2.id)
    round_2 = await schedule(client, town, [block.c1.id], day=3, name="Round 2")
    await both(round_2, town.operator, block.c1.id)
    fresh = await client.get(path, params={"compound_id": block.c1.id}, headers=town.operator)
    assert tallies(fresh.json()["buildings"]) == {
        "1": (6, 0, 0, 0, 6),
        "2": (6, 0, 0, 0, 6),
        "total": (12, 0, 0, 0, 12),
    }
    # Closed rounds are not open rounds; a compound of another committee is not found.
    for round_id in (round_2, round_1, round_c2):
        await post(client, f"/v1/rounds/{round_id}/close", {}, town.operator)
    none = await client.get(path, params={"compound_id": block.c1.id}, headers=town.operator)
    assert none.json() == {
        "compound_id": block.c1.id,
        "round": None,
        "buildings": None,
        "units": None,
    }
    outsider = await committee_staff(client, town, block.c2, "staff-c2")
    foreign = await client.get(path, params={"compound_id": block.c1.id}, headers=outsider)
    assert foreign.status_code == 404
    assert foreign.json()["errors"][0]["field"] == "compound_id"
    not_a_compound = await client.get(
        path, params={"compound_id": block.c1.building_id}, headers=town.operator
    )
    assert not_a_compound.status_code == 404


def token(platform: Platform, town: Town, role: Role, block: Block) -> dict[str, str]:
    """A leader's or volunteer's token for building 1 of C1: the scope the registry gives
    at sign-in to someone assigned there."""
    principal = Principal(
        id=f"test-{role.value}",
        username=f"test-{role.value}",
        role=role,
        scope=Scope.of(
            ScopeKind.buildings,
            towns=[town.id],
            compounds=[uuid.UUID(block.c1.id)],
            buildings=[uuid.UUID(block.c1.building_id)],
        ),
    )
    signed = issue_token(principal, secret=platform.settings.secret_key, minutes=10)
    return {"Authorization": f"Bearer {signed}"}


async def access_log(platform: Platform) -> list[Any]:
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        return list((await uow.session.execute(select(kernel.access_log))).all())


async def test_by_unit_the_people_of_a_house_without_units_count_under_their_house(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """Self-built houses have no units: by unit, each house is a group of its own (in its
    compound), never one anonymous group of every unit-less house in the town."""
    houses: dict[str, str] = {}
    compounds = []
    for code, people in (("V1", 3), ("V2", 2)):
        compound = await make_compound(client, town.id, town.operator, code=code)
        compounds.append(compound.id)
        house = await post(
            client,
            "/v1/buildings",
            {"compound_id": compound.id, "code": f"H{code}", "units": []},
            town.operator,
        )
        houses[house["id"]] = compound.id
        household = await post(
            client, "/v1/households", {"building_id": house["id"], "code": "A"}, town.operator
        )
        for n in range(people):
            body = {
                "household_id": household["id"],
                "name": f"{code}村民{n}",
                "document_number": id_number(born=f"19{60 + n}-03-02"),
                "tags": [],
            }
            await post(client, "/v1/residents", body, town.operator)
    await in_directory(platform, residents=5)
    round_id = await schedule(client, town, compounds, day=1, name="Villages")
    response = await client.get(
        f"/v1/rounds/{round_id}/coverage", params={"by": "unit"}, headers=town.operator
    )
    assert response.status_code == 200, response.text
    groups = {
        g["place_id"]: (g["kind"], g["compound_id"], g["expected"])
        for g in response.json()["groups"]
    }
    assert groups == {
        house: ("building", compound, people)
        for (house, compound), people in zip(houses.items(), (3, 2), strict=True)
    }
    opened = await client.get(
        "/v1/coverage/open-round", params={"compound_id": compounds[0]}, headers=town.operator
    )
    [house] = opened.json()["units"]["groups"]
    assert (house["kind"], house["code"], house["expected"]) == ("building", "HV1", 3)


async def test_the_missed_are_listed_masked_unless_an_operator_reveals_them(
    client: httpx.AsyncClient, town: Town, platform: Platform, sampled: tuple[Block, str]
) -> None:
    block, round_id = sampled
    path = f"/v1/rounds/{round_id}/missed"
    leader = token(platform, town, Role.building_leader, block)
    listed = await client.get(path, headers=leader)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert {r["resident_id"] for r in items} == block.ids("b0", "b1")
    assert {r["name"] for r in items} == {"b0", "b1"}
    assert {r["unit"] for r in items} == {"1-2"} and {r["unit_id"] for r in items} == {
        block.units["1-2"]
    }
    assert all(r["phone"] == "+86138****5678" for r in items)
    leader_coverage = await client.get(
        f"/v1/rounds/{round_id}/coverage", params={"by": "building"}, headers=leader
    )
    assert tallies(leader_coverage.json()) == {"1": (6, 4, 4, 4, 2), "total": (6, 4, 4, 4, 2)}

    volunteer = token(platform, town, Role.volunteer, block)
    masked = await client.get(path, headers=volunteer)
    assert all("****" in r["phone"] for r in masked.json()["items"])
    refused = await client.get(path, params={"reveal": "true"}, headers=volunteer)
    assert refused.status_code == 403
    assert await access_log(platform) == []

    first = await client.get(
        path, params={"compound_id": block.c1.id, "limit": 2}, headers=town.operator
    )
    second = await client.get(
        path,
        params={"compound_id": block.c1.id, "limit": 2, "cursor": first.json()["next_cursor"]},
        headers=town.operator,
    )
    assert len(first.json()["items"]) == 2 and second.json()["next_cursor"] is None
    pages = first.json()["items"] + second.json()["items"]
    assert {r["resident_id"] for r in pages} == block.ids("b0", "b1", "d1")
    assert all("****" in r["phone"] for r in pages)

    unit = await client.get(
        path,
        params={"unit_id": block.units["2-2"], "reveal": "true"},
        headers=town.operator,
    )
    [d1] = unit.json()["items"]
    assert d1["resident_id"] == block.people["d1"] and d1["door_to_door"]
    assert d1["phone"] == "+8613812345678"
    [logged] = await access_log(platform)
    assert logged.record_ids == [block.people["d1"]] and logged.role == "town_operator"
    assert logged.endpoint == path and "phone" in logged.fields


async def test_residents_missed_in_the_last_two_closed_rounds(
    client: httpx.AsyncClient, town: Town, platform: Platform, sampled: tuple[Block, str]
) -> None:
    block, round_1 = sampled
    # Round 0, earlier: nobody sampled. Round 2, later: b0 and d1 sampled at last.
    round_0 = await schedule(client, town, [block.c1.id], day=0, name="Round 0")
    round_2 = await schedule(client, town, [block.c1.id, block.c2.id], day=2, name="Round 2")
    await sample(client, town, round_2, {"Q0001": block.ids("b0"), "Q0002": block.ids("d1")})
    # Round 3 is still open: nobody sampled yet, but it does not count.
    await schedule(client, town, [block.c1.id], day=3, name="Round 3")
    path = "/v1/coverage/missed-twice"
    for round_id in (round_0, round_1):
        await post(client, f"/v1/rounds/{round_id}/close", {}, town.operator)
    # Until round 2 closes, the last two closed rounds are 0 and 1.
    before = await client.get(path, params={"compound_id": block.c1.id}, headers=town.operator)
    assert {r["resident_id"] for r in before.json()["items"]} == block.ids("b0", "b1", "d1")

    await post(client, f"/v1/rounds/{round_2}/close", {}, town.operator)
    # Missed in rounds 1 and 2: b1 only of those above; everyone else of C1 was sampled in
    # round 1, and C2's x0 too.
    after = await client.get(path, headers=town.operator)
    assert after.status_code == 200, after.text
    [b1] = after.json()["items"]
    assert b1["resident_id"] == block.people["b1"] and b1["unit"] == "1-2"
    assert "****" in b1["phone"]
    in_building_2 = await client.get(
        path, params={"building_id": block.b2.building_id}, headers=town.operator
    )
    assert in_building_2.json()["items"] == []

    outsider = await committee_staff(client, town, block.c2, "staff-c2")
    assert (await client.get(path, headers=outsider)).json()["items"] == []
    foreign = await client.get(path, params={"compound_id": block.c1.id}, headers=outsider)
    assert foreign.status_code == 404


async def test_committee_staff_of_another_committee_see_nothing_of_it(
    client: httpx.AsyncClient, town: Town, sampled: tuple[Block, str]
) -> None:
    block, round_id = sampled
    outsider = await committee_staff(client, town, block.c2, "staff-c2")
    insider = await committee_staff(client, town, block.c1, "staff-c1")
    path = f"/v1/rounds/{round_id}/coverage"
    theirs = await client.get(path, params={"by": "unit"}, headers=outsider)
    assert tallies(theirs.json()) == {"1-1": (1, 1, 0, 0, 0), "total": (1, 1, 0, 0, 0)}
    grids = await client.get(path, params={"by": "grid"}, headers=outsider)
    assert tallies(grids.json()) == {"total": (1, 1, 0, 0, 0)}
    for params in ({"compound_id": block.c1.id}, {"building_id": block.b2.building_id}):
        hidden = await client.get(path, params=params, headers=outsider)
        assert hidden.status_code == 404, params
    missed = await client.get(f"/v1/rounds/{round_id}/missed", headers=outsider)
    assert missed.json()["items"] == []
    clocks = await client.get("/v1/compound-clocks", headers=outsider)
    assert [c["compound_id"] for c in clocks.json()["items"]] == [block.c2.id]

    ours = await client.get(path, params={"by": "compound"}, headers=insider)
    assert tallies(ours.json()) == {"C1": (12, 9, 8, 5, 3), "total": (12, 9, 8, 5, 3)}
    ours_missed = await client.get(f"/v1/rounds/{round_id}/missed", headers=insider)
    assert {r["resident_id"] for r in ours_missed.json()["items"]} == block.ids("b0", "b1", "d1")


@pytest.fixture
async def quiet_block(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> AsyncIterator[Block]:
    """The block with the workers stopped once the directory is filled, so the events the
    clock job writes stay in the outbox to be counted."""
    workers = asyncio.create_task(platform.run_workers())
    try:
        block = await _block(client, town, platform)
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)
    yield block


async def announcements(platform: Platform) -> list[Envelope]:
    outbox = kernel.outbox
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        bodies = await uow.session.scalars(
            select(outbox.c.body)
            .where(outbox.c.routing_key == "testing.compound.epidemic_free_eligible")
            .order_by(outbox.c.seq)
        )
        return [Envelope.from_bytes(b) for b in bodies]


async def test_the_clock_announces_each_run_of_fourteen_days_once(
    client: httpx.AsyncClient, town: Town, platform: Platform, quiet_block: Block
) -> None:
    block = quiet_block
    runtime = platform.runtime("testing")
    round_id = await schedule(client, town, [block.c1.id], day=0, name="Round 0")
    start = datetime(2022, 4, 1, 5, tzinfo=UTC)

    async def tick(after: timedelta) -> None:
        await runtime.tick(ANNOUNCE_ELIGIBLE, now=start + after)

    await tick(timedelta(days=14) - timedelta(minutes=1))
    assert await announcements(platform) == []
    # Two replicas ticking at the same moment, then the next ticks.
    await asyncio.gather(tick(timedelta(days=14)), tick(timedelta(days=14)))
    await tick(timedelta(days=14, hours=1))
    await tick(timedelta(days=19))
    print([(e.occurred_at, e.payload) for e in await announcements(platform)])
    [first] = await announcements(platform)
    assert first.compound_id == uuid.UUID(block.c1.id)
    assert first.payload["days_without_positive"] == 14
    assert first.payload["last_positive_at"] is None
    # C2 never had a round or a case: it has no clock yet.

    confirmed = start + timedelta(days=20)
    async with runtime.uow(Principal.system("test")) as uow:
        member = await uow.session.scalar(
            select(RoundMember).where(
                RoundMember.round_id == uuid.UUID(round_id),
                RoundMember.resident_id == uuid.UUID(block.people["d0"]),
            )
        )
        assert member is not None
        uow.session.add(case_of(member, confirmed_at=confirmed))
        await uow.commit()
    await tick(timedelta(days=33, hours=23))
    assert len(await announcements(platform)) == 1
    await tick(timedelta(days=34))
    await tick(timedelta(days=40))
    first_again, second = await announcements(platform)
    assert first_again.id == first.id
    assert second.payload["days_without_positive"] == 14
    assert datetime.fromisoformat(second.payload["last_positive_at"]) == confirmed

    clocks = await client.get("/v1/compound-clocks", headers=town.operator)
    assert clocks.status_code == 200, clocks.text
    by_code = {c["code"]: c for c in clocks.json()["items"]}
    c1 = by_code["C1"]
    assert c1["counted_from"] == "last_positive"
    assert datetime.fromisoformat(c1["counting_from"]) == confirmed
    assert c1["days_without_positive"] == (datetime.now(UTC) - confirmed) // timedelta(days=1)
    assert c1["eligible"] and c1["epidemic_free_days"] == 14
    assert datetime.fromisoformat(c1["eligible_reported_at"]) == start + timedelta(days=34)
    assert by_code["C2"]["days_without_positive"] is None and not by_code["C2"]["eligible"]
    one = await client.get(
        "/v1/compound-clocks", params={"compound_id": block.c2.id}, headers=town.operator
    )
    assert [c["code"] for c in one.json()["items"]] == ["C2"]


async def test_a_compound_without_cases_counts_from_its_first_round(
    client: httpx.AsyncClient, town: Town, platform: Platform, quiet_block: Block
) -> None:
    block = quiet_block
    await schedule(client, town, [block.c2.id], day=5, name="Later round")
    await schedule(client, town, [block.c2.id], day=2, name="First round")
    clocks = await client.get(
        "/v1/compound-clocks", params={"compound_id": block.c2.id}, headers=town.operator
    )
    [c2] = clocks.json()["items"]
    first_start = datetime(2022, 4, 3, 5, tzinfo=UTC)
    assert c2["counted_from"] == "first_round" and c2["last_positive_at"] is None
    assert datetime.fromisoformat(c2["counting_from"]) == first_start
    await platform.runtime("testing").tick(ANNOUNCE_ELIGIBLE, now=first_start + timedelta(days=14))
    [announced] = await announcements(platform)
    assert announced.compound_id == uuid.UUID(block.c2.id)
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Case)) == 0


async def test_a_positive_pool_stays_positive_while_its_retests_are_at_the_lab(
    client: httpx.AsyncClient, town: Town, platform: Platform, sampled: tuple[Block, str]
) -> None:
    block, round_id = sampled
    path = f"/v1/rounds/{round_id}/coverage"
    pool = sorted(block.ids("a0", "a1", "a2", "a3"))
    for n, member in enumerate(pool):
        # Swabbed after the pool's result (14:00 UTC) asked for it.
        retest = tube(f"R000{n}", [member], retest=True, collected_at="2022-04-02T15:00:00Z")
        await post(client, f"/v1/rounds/{round_id}/tubes", retest, town.operator)

    async def coverage(**params: str) -> dict[str, tuple[int, ...]]:
        response = await client.get(path, params=params, headers=town.operator)
        assert response.status_code == 200, response.text
        return tallies(response.json())

    # expected, sampled, resulted, positive, missed: the pool's four are at the lab again
    # (not resulted) and still positive, at every level.
    assert (await coverage(by="compound"))["C1"] == (12, 9, 4, 5, 3)
    assert (await coverage(by="building", compound_id=block.c1.id))["1"] == (6, 4, 0, 4, 2)
    assert (await coverage(by="unit", compound_id=block.c1.id))["1-1"] == (4, 4, 0, 4, 0)
    assert (await coverage(by="grid"))["total"] == (13, 10, 4, 5, 3)

    # A negative retest clears its member; the others are still in a positive pool.
    await lab_result(platform, "R0000", "negative")
    assert (await coverage(by="unit", compound_id=block.c1.id))["1-1"] == (4, 4, 1, 3, 0)
