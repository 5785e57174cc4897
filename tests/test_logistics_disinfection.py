"""Disinfection: schedules per target make their tasks once per slot whatever the number of
replicas, tasks are completed (once) by the team in its scope, slots passed without
completion are listed as missed, schedules follow the zone through the directory, and a
confirmed case's stairwell gets a schedule and a task at once."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from cordon.platform import Platform
from services.logistics.app import DISINFECTION_CASES, DISINFECTION_TASKS
from services.logistics.models import directory
from shared.auth import Principal, Role, Scope
from shared.authz import ScopeKind
from shared.contracts.registry import ZoneChanged
from shared.contracts.testing import CaseConfirmed
from shared.events import Envelope
from shared.ids import new_id
from shared.service import ServiceRuntime
from tests.conftest import Town
from tests.support import (
    Compound,
    committee_staff,
    eventually,
    headers_for,
    listening,
    make_compound,
    of_type,
    post,
)

TOWN_CLOCK = ZoneInfo("Asia/Shanghai")  # the default town clock
TOMORROW = datetime.now(TOWN_CLOCK).date() + timedelta(days=1)


def town_time(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), TOWN_CLOCK).astimezone(UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def in_directory(platform: Platform, place_id: str) -> None:
    """Wait until the logistics directory holds the place (the registry's events applied)."""
    runtime = platform.runtime("logistics")

    async def arrived() -> bool:
        async with runtime.uow(Principal.system()) as uow:
            return await uow.session.get(directory.models.Place, uuid.UUID(place_id)) is not None

    await eventually(arrived, what=f"place {place_id} in the logistics directory")


async def tick(runtime: ServiceRuntime, at: datetime) -> None:
    await runtime.tick(DISINFECTION_TASKS, now=at)


async def tasks_of(
    client: httpx.AsyncClient, headers: Any, schedule_id: str, *, day: date = TOMORROW
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/disinfection-tasks?schedule_id={schedule_id}&limit=500", headers=headers
    )
    assert response.status_code == 200, response.text
    first, last = town_time(day, 0), town_time(day + timedelta(days=1), 0)
    return sorted(
        (
            t
            for t in response.json()["items"]
            if first <= datetime.fromisoformat(t["slot_at"]) < last
        ),
        key=lambda t: t["slot_at"],
    )


async def schedule(
    client: httpx.AsyncClient, headers: Any, compound: Compound, **fields: Any
) -> dict[str, Any]:
    body = {"compound_id": compound.id, "building_id": compound.building_id, **fields}
    return dict(await post(client, "/v1/disinfection-schedules", body, headers))


async def get_schedule(client: httpx.AsyncClient, headers: Any, schedule_id: str) -> Any:
    response = await client.get(f"/v1/disinfection-schedules/{schedule_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def arrived(events: list[Envelope]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(events)

    return check


def team_member(platform: Platform, town: Town, compound: Compound, name: str) -> dict[str, str]:
    """A volunteer of the disinfection team, assigned to the compound's building."""
    scope = Scope.of(
        ScopeKind.buildings,
        towns=[town.id],
        committees=[uuid.UUID(compound.committee_id)],
        compounds=[uuid.UUID(compound.id)],
        buildings=[uuid.UUID(compound.building_id)],
    )
    return headers_for(platform, Role.volunteer, scope, name)


async def test_two_replicas_make_each_slot_once(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="D1")
    staff = await committee_staff(client, town, compound, "staff-d1")
    await in_directory(platform, compound.building_id)
    lift = await schedule(client, staff, compound, target="lift", label="Lift A", per_day=2)
    assert (lift["per_day"], lift["label"], lift["reason"]) == (2, "Lift A", "manual")
    runtime = platform.runtime("logistics")
    replica = ServiceRuntime(
        runtime.spec, settings=platform.settings, transport=platform.transport, kv=platform.kv
    )
    try:
        noon = town_time(TOMORROW, 12)
        await asyncio.gather(tick(runtime, noon), tick(replica, noon), tick(replica, noon))
        await tick(runtime, noon + timedelta(minutes=1))
    finally:
        await replica.close()
    tasks = await tasks_of(client, staff, lift["id"])
    # Two slots between 08:00 and 20:00 town time, each made once.
    assert [t["slot_at"] for t in tasks] == [
        town_time(TOMORROW, 8).isoformat().replace("+00:00", "Z"),
        town_time(TOMORROW, 14).isoformat().replace("+00:00", "Z"),
    ]
    assert [t["due_at"] for t in tasks] == [
        town_time(TOMORROW, 14).isoformat().replace("+00:00", "Z"),
        town_time(TOMORROW, 20).isoformat().replace("+00:00", "Z"),
    ]
    assert {t["status"] for t in tasks} == {"pending"}


async def test_completion_is_recorded_once_by_the_team_in_its_scope(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="D2")
    staff = await committee_staff(client, town, compound, "staff-d2")
    await in_directory(platform, compound.building_id)
    hall = await schedule(client, staff, compound, target="building")
    assert hall["per_day"] == 1  # the town's default for a building
    await tick(platform.runtime("logistics"), town_time(TOMORROW, 9))
    [task] = await tasks_of(client, staff, hall["id"])
    member = team_member(platform, town, compound, "sprayer-1")
    url = f"/v1/disinfection-tasks/{task['id']}/complete"
    # The task is tomorrow's (the job ran on tomorrow's clock): done now, by default, since a
    # stated time must not be in the future.
    async with listening(platform, "logistics.disinfection.#") as events:
        body = {"note": "stairs and handrails", "photo_ref": "p/1"}
        done = await post(client, url, body, member)
        assert (done["status"], done["done_by"], done["note"]) == (
            "done",
            "sprayer-1",
            "stairs and handrails",
        )
        assert abs(datetime.fromisoformat(done["done_at"]) - datetime.now(UTC)) < timedelta(
            minutes=1
        )
        # The phone resends: the first record stands, the same answer.
        again = await post(client, url, body, member)
        assert (again["note"], again["version"]) == ("stairs and handrails", done["version"])
        # Something else sent for it is refused.
        other = await client.post(url, json={"note": "again"}, headers=member)
        assert other.status_code == 409, other.text
        await eventually(arrived(events), what="the done event")
        await asyncio.sleep(0.5)  # time for a second one, which must not come
    [event] = of_type(events, "logistics.disinfection.done")
    assert event.payload["task_id"] == task["id"]
    assert (event.payload["task_version"], event.payload["late"]) == (2, False)
    # A team member of another building sees no such task.
    elsewhere = team_member(
        platform,
        town,
        Compound(compound.committee_id, compound.id, "D2", str(new_id()), "9", []),
        "sprayer-2",
    )
    response = await client.post(url, json={}, headers=elsewhere)
    assert response.status_code == 404, response.text


async def test_a_slot_passed_without_completion_is_listed_missed(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="D3")
    staff = await committee_staff(client, town, compound, "staff-d3")
    await in_directory(platform, compound.building_id)
    lift = await schedule(client, staff, compound, target="lift", per_day=2)
    runtime = platform.runtime("logistics")
    await tick(runtime, town_time(TOMORROW, 9))
    morning, afternoon = await tasks_of(client, staff, lift["id"])
    async with listening(platform, "logistics.disinfection.missed") as events:
        # 15:00: the morning slot (due 14:00) passed; the afternoon one is still open.
        await tick(runtime, town_time(TOMORROW, 15))
        await tick(runtime, town_time(TOMORROW, 15) + timedelta(minutes=1))
        await eventually(arrived(events), what="the missed event")
        await asyncio.sleep(0.5)  # time for a second one, which must not come
    [event] = events
    assert (event.payload["task_id"], event.payload["task_version"]) == (morning["id"], 2)
    response = await client.get(
        f"/v1/disinfection-tasks/missed?compound_id={compound.id}", headers=staff
    )
    assert response.status_code == 200, response.text
    [group] = response.json()
    assert (group["compound_id"], group["building_id"], group["missed"]) == (
        compound.id,
        compound.building_id,
        1,
    )
    assert [t["id"] for t in group["tasks"]] == [morning["id"]]
    assert [t["status"] for t in await tasks_of(client, staff, lift["id"])] == [
        "missed",
        "pending",
    ]
    # Done late, it stays among the missed, with its completion.
    late = await post(client, f"/v1/disinfection-tasks/{morning['id']}/complete", {}, staff)
    assert late["status"] == "done" and late["missed_at"] is not None
    response = await client.get(
        f"/v1/disinfection-tasks/missed?building_id={compound.building_id}", headers=staff
    )
    [group] = response.json()
    assert group["tasks"][0]["done_at"] is not None
    assert afternoon["id"] not in [t["id"] for t in group["tasks"]]


async def test_a_sealed_unit_raises_its_schedule_and_a_sealed_building_gets_one(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="D4")
    staff = await committee_staff(client, town, compound, "staff-d4")
    await in_directory(platform, compound.unit_ids[0])
    unit = await schedule(client, staff, compound, target="unit", unit_id=compound.unit_ids[0])
    lift = await schedule(client, staff, compound, target="lift", per_day=2)
    assert (unit["per_day"], unit["zone_level"]) == (1, None)
    seal = {
        "building_id": compound.building_id,
        "unit_id": compound.unit_ids[0],
        "level": "sealed",
        "reason": "a positive on the 3rd floor",
    }
    await post(client, "/v1/zones", seal, staff)

    async def risen() -> bool:
        found = await get_schedule(client, staff, unit["id"])
        return bool(found["per_day"] == 3)

    await eventually(risen, what="the unit's schedule to rise")
    found = await get_schedule(client, staff, unit["id"])
    assert (found["zone_level"], found["version"], found["base_per_day"]) == ("sealed", 2, None)
    # The building's lift is not in the sealed unit: unchanged.
    assert (await get_schedule(client, staff, lift["id"]))["per_day"] == 2
    await tick(platform.runtime("logistics"), town_time(TOMORROW, 7))
    assert len(await tasks_of(client, staff, unit["id"])) == 3
    # An older lift of the unit's zone, replayed late (from parking): the directory drops it,
    # and the schedule, which follows the directory, stays as it is.
    stale = ZoneChanged(
        town_id=town.id,
        compound_id=uuid.UUID(compound.id),
        building_id=uuid.UUID(compound.building_id),
        unit_id=uuid.UUID(compound.unit_ids[0]),
        from_level="sealed",
        to_level=None,
        reason="an old lift",
        set_by="operator",
        at=datetime.now(UTC) - timedelta(days=3),
    )
    runtime = platform.runtime("logistics")
    [follower] = [c for c in runtime.spec.consumers if c.name == "directory"]
    replayed = Envelope.wrap(stale, producer="registry", correlation_id="test-stale")
    replayed = replayed.model_copy(update={"position": 1})
    assert await runtime.process(follower, replayed, queue=runtime.subscription(follower).queue)
    found = await get_schedule(client, staff, unit["id"])
    assert (found["per_day"], found["zone_level"], found["version"]) == (3, "sealed", 2)

    # The whole building sealed: its lift rises, and the building gets a schedule of its own.
    await post(client, "/v1/zones", {**seal, "unit_id": None}, staff)

    async def building_scheduled() -> list[Any]:
        response = await client.get(
            f"/v1/disinfection-schedules?building_id={compound.building_id}", headers=staff
        )
        return [s for s in response.json()["items"] if s["reason"] == "sealed" and s["active"]]

    async def building_sealed() -> bool:
        return bool(await building_scheduled())

    await eventually(building_sealed, what="the sealed building's schedule")
    [sealed] = await building_scheduled()
    assert (sealed["target"], sealed["per_day"], sealed["unit_id"]) == ("building", 3, None)
    assert (await get_schedule(client, staff, lift["id"]))["per_day"] == 3

    # Lifted again: the sealed building's schedule ends, the lift falls back.
    await post(client, "/v1/zones", {**seal, "unit_id": None, "level": None}, staff)

    async def lifted() -> bool:
        return bool((await get_schedule(client, staff, sealed["id"]))["active"] is False)

    await eventually(lifted, what="the sealed building's schedule to end")
    assert (await get_schedule(client, staff, lift["id"]))["per_day"] == 2


def case_in(town: Town, compound: Compound, *, confirmed_at: datetime) -> CaseConfirmed:
    return CaseConfirmed(
        case_id=new_id(),
        resident_id=new_id(),
        household_id=None,
        town_id=town.id,
        compound_id=uuid.UUID(compound.id),
        building_id=uuid.UUID(compound.building_id),
        unit_id=uuid.UUID(compound.unit_ids[1]),
        round_id=None,
        tube_code="S-000321",
        source="single_tube",
        confirmed_at=confirmed_at,
        contacts=[],
    )


async def deliver(platform: Platform, event: CaseConfirmed | Envelope) -> bool:
    """Hand one event to the logistics consumer of cases, as its worker would."""
    runtime = platform.runtime("logistics")
    message = (
        event
        if isinstance(event, Envelope)
        else Envelope.wrap(event, producer="testing", correlation_id=f"test-{new_id()}")
    )
    queue = runtime.subscription(DISINFECTION_CASES).queue
    return await runtime.process(DISINFECTION_CASES, message, queue=queue)


async def test_a_confirmed_case_gives_its_stairwell_a_schedule_and_a_task_at_once(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="D5")
    staff = await committee_staff(client, town, compound, "staff-d5")
    await in_directory(platform, compound.unit_ids[1])
    confirmed_at = datetime.now(UTC).replace(microsecond=0)
    case = case_in(town, compound, confirmed_at=confirmed_at)
    message = Envelope.wrap(case, producer="testing", correlation_id="test-case")
    assert await deliver(platform, message)
    assert not await deliver(platform, message)  # redelivered: nothing more
    # An older case of the same stairwell, arriving late, keeps the later end.
    assert await deliver(
        platform, case_in(town, compound, confirmed_at=confirmed_at - timedelta(days=2))
    )
    response = await client.get(
        f"/v1/disinfection-schedules?compound_id={compound.id}", headers=staff
    )
    [stairwell] = response.json()["items"]
    assert (stairwell["target"], stairwell["reason"], stairwell["per_day"]) == (
        "stairwell",
        "case",
        4,
    )
    assert stairwell["unit_id"] == compound.unit_ids[1]
    assert datetime.fromisoformat(stairwell["until"]) == confirmed_at + timedelta(days=14)
    assert stairwell["case_id"] == str(case.case_id)
    today = confirmed_at.astimezone(TOWN_CLOCK).date()
    tasks = await tasks_of(client, staff, stairwell["id"], day=today)
    now_task = [t for t in tasks if datetime.fromisoformat(t["slot_at"]) == confirmed_at]
    assert len(now_task) == 1 and now_task[0]["status"] == "pending"
    assert now_task[0]["unit_id"] == compound.unit_ids[1]
    # The registry seals the unit (its zone policy, here an operator): the stairwell's
    # schedule follows the zone, and its task at once stays.
    seal = {
        "building_id": compound.building_id,
        "unit_id": compound.unit_ids[1],
        "level": "sealed",
        "reason": "a case",
    }
    await post(client, "/v1/zones", seal, staff)

    async def followed() -> bool:
        found = await get_schedule(client, staff, stairwell["id"])
        return bool(found["zone_level"] == "sealed")

    await eventually(followed, what="the stairwell's schedule to follow the seal")
    assert (await get_schedule(client, staff, stairwell["id"]))["per_day"] == 4
    tasks = await tasks_of(client, staff, stairwell["id"], day=today)
    assert [t["id"] for t in tasks if at(t["slot_at"]) == confirmed_at] == [now_task[0]["id"]]


async def test_committees_see_and_change_only_their_own_schedules(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    mine = await make_compound(client, town.id, town.operator, code="D6")
    theirs = await make_compound(client, town.id, town.operator, code="D7")
    staff = await committee_staff(client, town, mine, "staff-d6")
    other = await committee_staff(client, town, theirs, "staff-d7")
    await in_directory(platform, mine.building_id)
    await in_directory(platform, theirs.building_id)
    lift = await schedule(client, staff, mine, target="lift")
    await tick(platform.runtime("logistics"), town_time(TOMORROW, 9))
    [task, *_] = await tasks_of(client, staff, lift["id"])
    listed = await client.get("/v1/disinfection-schedules", headers=other)
    assert listed.json()["items"] == []
    assert (await client.get("/v1/disinfection-tasks", headers=other)).json()["items"] == []
    missed = await client.get("/v1/disinfection-tasks/missed", headers=other)
    assert missed.json() == []
    for response in (
        await client.get(f"/v1/disinfection-schedules/{lift['id']}", headers=other),
        await client.patch(
            f"/v1/disinfection-schedules/{lift['id']}", json={"per_day": 5}, headers=other
        ),
        await client.post(f"/v1/disinfection-tasks/{task['id']}/complete", json={}, headers=other),
        await client.post(
            "/v1/disinfection-schedules",
            json={"target": "lift", "compound_id": mine.id, "building_id": mine.building_id},
            headers=other,
        ),
    ):
        assert response.status_code == 404, response.text
    assert (await get_schedule(client, staff, lift["id"]))["per_day"] == 2
    # A building of another compound is refused, naming the field.
    response = await client.post(
        "/v1/disinfection-schedules",
        json={"target": "lift", "compound_id": mine.id, "building_id": theirs.building_id},
        headers=town.operator,
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "building_id"
    # A volunteer completes tasks but does not manage schedules.
    member = team_member(platform, town, mine, "sprayer-3")
    response = await client.patch(
        f"/v1/disinfection-schedules/{lift['id']}", json={"per_day": 5}, headers=member
    )
    assert response.status_code == 403, response.text


async def test_a_towns_defaults_are_data_its_schedules_follow(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="D8")
    staff = await committee_staff(client, town, compound, "staff-d8")
    await in_directory(platform, compound.building_id)
    lift = await schedule(client, staff, compound, target="lift")
    fixed = await schedule(client, staff, compound, target="lift", label="Lift B", per_day=1)
    url = f"/v1/disinfection-defaults/{town.id}"
    defaults = (await client.get(url, headers=staff)).json()
    assert (defaults["lift_per_day"], defaults["sealed_per_day"]) == (2, 3)
    # The clock is the town office's (Settings.time_zone), not a column of the defaults.
    assert "timezone" not in defaults
    changed = {**defaults, "lift_per_day": 3}
    del changed["town_id"]
    response = await client.put(url, json=changed, headers=staff)
    assert response.status_code == 403, response.text
    response = await client.put(url, json={**changed, "sealed_per_day": 0}, headers=town.operator)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "sealed_per_day"
    response = await client.put(url, json=changed, headers=town.operator)
    assert response.status_code == 200, response.text
    # The lift on the town's default follows it; the one staff set keeps its own.
    followed = await get_schedule(client, staff, lift["id"])
    assert (followed["per_day"], followed["version"]) == (3, 2)
    assert (await get_schedule(client, staff, fixed["id"]))["per_day"] == 1
    # Slots run 08:00 to 20:00 on the town office's clock: a deployment in Urumqi
    # (CORDON_TIME_ZONE=Asia/Urumqi) makes them on its own.
    runtime = platform.runtime("logistics")
    runtime.settings = runtime.settings.model_copy(update={"time_zone": "Asia/Urumqi"})
    urumqi = ZoneInfo("Asia/Urumqi")
    await tick(runtime, datetime.combine(TOMORROW, time(9), urumqi))
    response = await client.get(
        f"/v1/disinfection-tasks?schedule_id={lift['id']}&limit=500", headers=staff
    )
    starts = sorted(at(t["slot_at"]).astimezone(urumqi) for t in response.json()["items"])
    assert [s.hour for s in starts if s.date() == TOMORROW] == [8, 12, 16]


async def test_a_completion_in_the_future_or_before_its_slot_or_over_anothers_is_refused(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="D9")
    staff = await committee_staff(client, town, compound, "staff-d9")
    await in_directory(platform, compound.unit_ids[1])
    # A case's stairwell task at once: its slot is the confirmation, an hour ago.
    confirmed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    assert await deliver(platform, case_in(town, compound, confirmed_at=confirmed_at))
    [stairwell] = (
        await client.get(f"/v1/disinfection-schedules?compound_id={compound.id}", headers=staff)
    ).json()["items"]
    day = confirmed_at.astimezone(TOWN_CLOCK).date()
    [task] = [
        t
        for t in await tasks_of(client, staff, stairwell["id"], day=day)
        if at(t["slot_at"]) == confirmed_at
    ]
    url = f"/v1/disinfection-tasks/{task['id']}/complete"
    member = team_member(platform, town, compound, "sprayer-9")
    for done_at in (datetime.now(UTC) + timedelta(days=3 * 365), confirmed_at - timedelta(days=2)):
        refused = await client.post(url, json={"done_at": done_at.isoformat()}, headers=member)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "done_at"
    pending = await client.get(f"/v1/disinfection-tasks/{task['id']}", headers=staff)
    assert pending.json()["status"] == "pending"

    body = {"done_at": (confirmed_at + timedelta(minutes=30)).isoformat(), "note": "stairs"}
    done = await post(client, url, body, member)
    # The phone resends the same: the same answer.
    again = await client.post(url, json=body, headers=member)
    assert again.status_code == 200, again.text
    assert again.json() == done
    # Someone else completes it again, differently: refused, the first record stands.
    other = team_member(platform, town, compound, "sprayer-10")
    clash = await client.post(url, json={"note": "did it too"}, headers=other)
    assert clash.status_code == 409, clash.text
    assert "sprayer-9" in clash.json()["detail"]
    changed = await client.post(url, json={**body, "note": "other words"}, headers=member)
    assert changed.status_code == 409, changed.text
    final = (await client.get(f"/v1/disinfection-tasks/{task['id']}", headers=staff)).json()
    assert (final["done_by"], final["note"], final["version"]) == ("sprayer-9", "stairs", 2)
