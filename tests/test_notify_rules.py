"""Notify rules: events become messages for the right people, once, in their language; an
operator lists, switches and previews the rules."""

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cordon.platform import Platform
from services.logistics.app import REQUEST_OVERDUE
from services.logistics.models import directory
from services.notify.models import DirectoryAssignment, DirectoryPerson, Message, MessageState
from services.notify.rules.service import fire
from services.notify.settings import get_notify_settings
from shared.auth import Principal, Role, Scope, ScopeKind
from shared.bus.transport import Outgoing
from shared.contracts.registry import ZoneChanged
from shared.contracts.testing import PoolPositive
from shared.events import Envelope
from shared.settings import Settings
from tests.conftest import Town
from tests.notify_support import messages, notify_knows, resident
from tests.support import eventually, headers_for, make_compound, post
from tests.test_event_tolerance import change
from tests.test_logistics_plans import in_directory, plan, receive
from tests.test_zone_policy import case_in, envelope


async def test_a_confirmed_case_seals_its_unit_and_its_residents_hear_it_once_in_their_language(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="R1")
    wang = await resident(client, compound, town.operator, name="王秀英", unit=1)
    anna = await resident(client, compound, town.operator, name="Anna", unit=1, language="en")
    # Opted out of optional messages: a seal still reaches her.
    li = await resident(client, compound, town.operator, name="李娜", unit=1, opted_out=True)
    await resident(client, compound, town.operator, name="张伟", unit=0)
    await notify_knows(platform, 4)

    case = envelope(case_in(town, compound, unit_id=compound.unit_ids[1]))
    # The same event twice: a redelivery.
    await platform.transport.publish(
        [Outgoing(str(case.id), case.type, case.to_bytes()) for _ in range(2)]
    )

    async def sealed_messages() -> bool:
        return len(await messages(platform, template_key="sealed")) >= 3

    await eventually(sealed_messages, what="the sealed unit's messages")
    await asyncio.sleep(0.5)
    sent = await messages(platform, template_key="sealed")
    assert sorted((m.recipient_id, m.language) for m in sent) == sorted(
        [
            (uuid.UUID(wang["id"]), "zh-CN"),
            (uuid.UUID(anna["id"]), "en"),
            (uuid.UUID(li["id"]), "zh-CN"),
        ]
    )
    by_language = {m.language: m for m in sent}
    assert by_language["en"].text.startswith("Compound R1 1-2 is sealed from ")
    assert by_language["zh-CN"].text.startswith("Compound R1 1-2自")
    assert {(m.priority, m.cause_kind) for m in sent} == {("urgent", "event")}

    async def handed_over() -> bool:
        states = {m.state for m in await messages(platform, template_key="sealed")}
        return states <= {"sent", "delivered"}

    # The dispatcher hands each to the gateway (the log gateway in tests).
    await eventually(handed_over, what="the sealed unit's messages handed to the gateway")

    # The zone.changed event handed to the rules again (a replay) sends nothing twice.
    runtime = platform.runtime("notify")
    async with runtime.uow(Principal.system()) as uow:
        [cause] = {m.cause_id for m in sent}
        replay = Envelope.wrap(
            ZoneChanged(
                town_id=town.id,
                compound_id=uuid.UUID(compound.id),
                building_id=uuid.UUID(compound.building_id),
                unit_id=uuid.UUID(compound.unit_ids[1]),
                from_level=None,
                to_level="sealed",
                reason="replay",
                set_by="zone-policy",
                at=datetime.now(UTC),
            ),
            producer="registry",
            correlation_id="test-replay",
        )
        replay = replay.model_copy(update={"id": cause})
        await fire(uow, replay)
        await uow.commit()
    assert len(await messages(platform, template_key="sealed")) == 3


async def test_rules_are_listed_switched_and_previewed(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="R1")
    await resident(client, compound, town.operator, name="王秀英", unit=0)
    await resident(client, compound, town.operator, name="Anna", unit=0, language="en")
    await resident(client, compound, town.operator, name="张伟", unit=0, phone=None)
    await notify_knows(platform, 3)

    listed = await client.get(f"/v1/rules?town_id={town.id}", headers=town.operator)
    assert listed.status_code == 200, listed.text
    rules = {r["key"]: r for r in listed.json()}
    assert (rules["zone_sealed"]["event_type"], rules["zone_sealed"]["priority"]) == (
        "registry.zone.changed",
        "urgent",
    )
    assert rules["request_assigned"]["event_type"] == "logistics.request.assigned"
    assert all(r["enabled"] for r in rules.values())

    payload = {
        "town_id": str(town.id),
        "compound_id": compound.id,
        "building_id": compound.building_id,
        "unit_id": compound.unit_ids[0],
        "from_level": None,
        "to_level": "sealed",
        "reason": "case",
        "set_by": "operator",
        "at": "2022-04-01T17:30:00Z",
    }
    preview = await client.post(
        "/v1/rules/zone_sealed/preview",
        json={"town_id": str(town.id), "payload": payload},
        headers=town.operator,
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert (shown["recipients"], shown["skipped_no_phone"], shown["applies"]) == (2, 1, True)
    assert shown["by_language"] == {"zh-CN": 1, "en": 1}
    texts = {t["locale"]: t for t in shown["texts"]}
    assert texts["zh-CN"]["text"].startswith("Compound R1 1-1自4月2日 01:30起实行封控管理")
    # The signature (【Cordon】) makes the English text UCS-2 too: over 70 units, two parts.
    assert (texts["zh-CN"]["segments"], texts["en"]["encoding"], texts["en"]["segments"]) == (
        1,
        "ucs2",
        2,
    )
    assert shown["segments"] == texts["zh-CN"]["segments"] + texts["en"]["segments"]
    assert await messages(platform) == []

    # A template the rule cannot fill is refused; switching the rule off stops it.
    own = {
        "town_id": str(town.id),
        "key": "gate_notice",
        "variables": {"gate": "str"},
        "texts": {"zh-CN": "请走{gate}。"},
    }
    assert (await client.post("/v1/templates", json=own, headers=town.operator)).status_code == 201
    url = "/v1/rules/zone_sealed"
    refused = await client.patch(
        url, json={"town_id": str(town.id), "template_key": "gate_notice"}, headers=town.operator
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "template_key"
    off = await client.patch(
        url, json={"town_id": str(town.id), "enabled": False}, headers=town.operator
    )
    assert off.status_code == 200 and off.json()["enabled"] is False, off.text

    runtime = platform.runtime("notify")
    async with runtime.uow(Principal.system()) as uow:
        event = Envelope.wrap(
            ZoneChanged.model_validate(payload), producer="registry", correlation_id="t"
        )
        await fire(uow, event)
        await uow.commit()
    assert await messages(platform) == []


async def test_logistics_events_reach_the_volunteer_and_the_resident_by_type_name(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="R1")
    asker = await resident(client, compound, town.operator, name="Anna", language="en")
    volunteer = await post(
        client,
        "/v1/volunteers",
        {"compound_id": compound.id, "name": "小李", "kind": "service", "phone": "13712345678"},
        town.operator,
    )
    await notify_knows(platform, 1)
    runtime = platform.runtime("notify")

    async def volunteer_known() -> bool:
        async with runtime.uow(Principal.system()) as uow:
            found = await uow.session.get(DirectoryPerson, uuid.UUID(volunteer["id"]))
            return found is not None

    await eventually(volunteer_known, what="the volunteer in the notify directory")
    request = {
        "request_id": str(uuid.uuid4()),
        "revision": 2,
        "town_id": str(town.id),
        "compound_id": compound.id,
        "building_id": compound.building_id,
        "resident_id": asker["id"],
        "kind": "baby_supplies",
        "priority": "urgent",
        "status": "assigned",
        "due_at": "2022-04-02T02:30:00+08:00",
        "at": "2022-04-02T01:30:00+08:00",
        "assignee_id": volunteer["id"],
        "a_field_added_later": True,
    }
    for kind, payload in (
        ("logistics.request.assigned", request),
        ("logistics.request.done", {**request, "status": "done"}),
    ):
        event = Envelope(
            type=kind, version=1, producer="logistics", correlation_id="t", payload=payload
        )
        async with runtime.uow(Principal.system()) as uow:
            await fire(uow, event)
            await uow.commit()
    [assigned] = await messages(platform, template_key="request_assigned")
    assert (assigned.recipient_kind, str(assigned.recipient_id)) == ("volunteer", volunteer["id"])
    # The kind in the volunteer's language (baby_supplies), in the resident's own (done).
    assert assigned.text.startswith("您有一项新的代跑任务：母婴用品，地点Compound R1 1，")
    [done] = await messages(platform, template_key="request_done")
    assert (str(done.recipient_id), done.language) == (asker["id"], "en")
    assert done.text.startswith("Your request (baby supplies) is done.")

    # The volunteer reads the messages sent to them, never the resident's (nor anyone's).
    place = Scope.of(ScopeKind.compounds, towns=[town.id], compounds=[uuid.UUID(compound.id)])
    mine = headers_for(platform, Role.volunteer, place, "xiaoli", person_id=volunteer["id"])
    listed = await client.get("/v1/messages", headers=mine)
    assert [m["id"] for m in listed.json()["items"]] == [str(assigned.id)]
    assert (await client.get(f"/v1/messages/{assigned.id}", headers=mine)).status_code == 200
    assert (await client.get(f"/v1/messages/{done.id}", headers=mine)).status_code == 404
    every_state = "&".join(f"state={s.value}" for s in MessageState)
    counted = (await client.get(f"/v1/messages/counts?{every_state}", headers=mine)).json()
    assert sum(n for row in counted for n in row["states"].values()) == 1


@pytest.fixture
def quiet_now(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The town's quiet hours hold while the test runs, whatever the hour it runs at: the
    background dispatcher judges by the real clock."""
    local = datetime.now(settings.zone)
    window = f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=3):%H:%M}"
    monkeypatch.setenv("CORDON_NOTIFY_QUIET_HOURS", window)
    get_notify_settings.cache_clear()
    yield
    get_notify_settings.cache_clear()


async def _settled(platform: Platform, *, recipient_id: str, count: int) -> list[Message]:
    """The recipient's request_overdue messages, once the dispatcher has judged them."""

    where = {"template_key": "request_overdue", "recipient_id": uuid.UUID(recipient_id)}

    async def judged() -> bool:
        found = await messages(platform, **where)
        return len(found) >= count and all(m.state not in ("queued", "sending") for m in found)

    await eventually(judged, within=10, what=f"{count} overdue notices judged")
    return await messages(platform, **where)


@dataclass
class Night:
    """Compound N1 in the quiet hours: a mother with an infant (101), a dialysis patient
    (102), a volunteer, the committee's secretary, the grid leader of its building and the
    town office's duty officer, all with mobiles, known to the notify and logistics
    directories."""

    mother: str
    patient: str
    volunteer: str
    staff: str
    leader: str
    operator: str


@pytest.fixture
async def night(
    quiet_now: None, client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> Night:
    h = town.operator
    compound = await make_compound(client, town.id, h, code="N1")
    mother = await resident(client, compound, h, name="王秀英", household="101")
    await resident(client, compound, h, name="李小宝", household="101", tags=["infant"], phone=None)
    patient = await resident(client, compound, h, name="陈刚", household="102", tags=["dialysis"])
    place = {"compound_id": compound.id}
    volunteer = await post(
        client,
        "/v1/volunteers",
        {**place, "name": "小李", "kind": "service", "phone": "13712345678"},
        h,
    )
    # They run the errands of the residents' building (only there do they see one).
    await post(
        client,
        "/v1/assignments",
        {
            "person_kind": "volunteer",
            "person_id": volunteer["id"],
            "building_id": compound.building_id,
        },
        h,
    )
    staff = await post(
        client,
        "/v1/staff",
        {**place, "name": "小陈", "title": "secretary", "phone": "13512345678"},
        h,
    )
    grid = {"town_id": str(town.id), "code": "G1", "name": "Grid 1"}
    grid = await post(client, "/v1/grids", {**grid, "building_ids": [compound.building_id]}, h)
    leader = await post(
        client,
        "/v1/staff",
        {**place, "name": "老周", "title": "grid leader", "phone": "13612345678"},
        h,
    )
    await post(
        client,
        "/v1/assignments",
        {"person_kind": "staff", "person_id": leader["id"], "grid_id": grid["id"]},
        h,
    )
    operator = await post(
        client,
        "/v1/staff",
        {"town_id": str(town.id), "name": "老吴", "title": "duty officer", "phone": "13912345678"},
        h,
    )
    await notify_knows(platform, 3)
    notify, logistics = platform.runtime("notify"), platform.runtime("logistics")

    async def everyone_known() -> bool:
        async with notify.uow(Principal.system()) as uow:
            grids = await uow.session.scalar(select(func.count()).select_from(DirectoryAssignment))
            on_duty = await uow.session.get(DirectoryPerson, uuid.UUID(operator["id"]))
        async with logistics.uow(Principal.system()) as uow:
            people = await uow.session.scalar(
                select(func.count()).select_from(directory.models.Person)
            )
            households = await uow.session.scalar(
                select(func.count()).select_from(directory.models.Resident)
            )
            assignments = await uow.session.scalar(
                select(func.count()).select_from(directory.models.Assignment)
            )
        known = (grids or 0) >= 1 and (people or 0) >= 4 and (households or 0) >= 3
        known = known and (assignments or 0) >= 2
        return known and on_duty is not None

    await eventually(everyone_known, what="the people in the notify and logistics directories")
    return Night(
        mother["id"], patient["id"], volunteer["id"], staff["id"], leader["id"], operator["id"]
    )


async def _ask(
    client: httpx.AsyncClient, town: Town, resident_id: str, kind: str, **more: Any
) -> Any:
    body = {"resident_id": resident_id, "kind": kind, **more}
    request = await post(client, "/v1/requests", body, town.operator)
    assert request["priority"] == "urgent"
    return request


async def _assign(client: httpx.AsyncClient, town: Town, request: Any, volunteer_id: str) -> None:
    url = f"/v1/requests/{request['id']}/assign"
    given = await client.post(url, json={"volunteer_id": volunteer_id}, headers=town.operator)
    assert given.status_code == 200, given.text


async def test_an_urgent_errand_reaches_its_volunteer_in_the_quiet_hours(
    night: Night, client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    # An infant's formula, urgent, given to the volunteer in the quiet hours: he hears it now.
    formula = await _ask(client, town, night.mother, "baby_supplies")
    await _assign(client, town, formula, night.volunteer)

    async def assigned_judged() -> bool:
        found = await messages(platform, template_key="request_assigned")
        return bool(found) and all(m.state not in ("queued", "sending") for m in found)

    await eventually(assigned_judged, within=10, what="the assignment's text judged")
    [assigned] = await messages(platform, template_key="request_assigned")
    assert (str(assigned.recipient_id), assigned.priority) == (night.volunteer, "urgent")
    assert (assigned.state, assigned.error) == ("sent", None)


async def test_an_urgent_overdue_request_reaches_someone_at_each_level_in_the_quiet_hours(
    night: Night, client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    formula = await _ask(client, town, night.mother, "baby_supplies")
    await _assign(client, town, formula, night.volunteer)
    # An urgent dialysis transport nobody took, and the formula, go overdue in the night.
    transport = await _ask(client, town, night.patient, "medical_transport", reason="dialysis")
    logistics = platform.runtime("logistics")
    due = max(datetime.fromisoformat(r["due_at"]) for r in (formula, transport))
    await logistics.tick(REQUEST_OVERDUE, now=due + timedelta(minutes=1))
    # The first notice: the volunteer running the formula, the compound's staff for the
    # transport nobody runs.
    [to_volunteer] = await _settled(platform, recipient_id=night.volunteer, count=1)
    [to_staff] = await _settled(platform, recipient_id=night.staff, count=1)
    assert to_volunteer.cause_id != to_staff.cause_id
    # (The grid leader is on the committee's staff too: he may have heard the first already.)
    heard = await messages(
        platform, template_key="request_overdue", recipient_id=uuid.UUID(night.leader)
    )

    # An hour later the grid leader hears of both; nothing expires for the quiet hours.
    await logistics.tick(REQUEST_OVERDUE, now=due + timedelta(minutes=61))
    to_leader = await _settled(platform, recipient_id=night.leader, count=len(heard) + 2)
    # Nobody at the town office has heard of them yet.
    town_office = {"template_key": "request_overdue", "recipient_id": uuid.UUID(night.operator)}
    assert await messages(platform, **town_office) == []

    # Another hour: the third level, the town office's duty officer, hears of both.
    await logistics.tick(REQUEST_OVERDUE, now=due + timedelta(minutes=121))
    to_operator = await _settled(platform, recipient_id=night.operator, count=2)
    assert {m.cause_id for m in to_operator}.isdisjoint(m.cause_id for m in to_leader)
    assert all(m.text.startswith("求助「") for m in to_operator)
    notices = [to_volunteer, to_staff, *to_leader, *to_operator]
    assert {(m.priority, m.state, m.error) for m in notices} == {("urgent", "sent", None)}


async def test_a_cancelled_distribution_reaches_the_building_leaders_who_heard_it_planned(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    h = town.operator
    compound = await make_compound(client, town.id, h, code="D1")
    await resident(client, compound, h, name="王秀英")
    await resident(client, compound, h, name="张伟", unit=1)
    leader = await post(
        client,
        "/v1/volunteers",
        {"compound_id": compound.id, "name": "小张", "kind": "service", "phone": "13712345678"},
        h,
    )
    body = {"person_kind": "volunteer", "person_id": leader["id"]}
    await post(
        client,
        "/v1/assignments",
        {**body, "building_id": compound.building_id, "duty": "building leader"},
        h,
    )
    item = {"town_id": str(town.id), "name": "Supply package", "unit": "portion"}
    package = str((await post(client, "/v1/items", item, h))["id"])
    await receive(client, h, compound.id, package, 10)
    await in_directory(platform, residents=2)
    notify = platform.runtime("notify")

    async def leader_known() -> bool:
        async with notify.uow(Principal.system()) as uow:
            query = select(func.count()).select_from(DirectoryAssignment)
            return bool(await uow.session.scalar(query))

    await eventually(leader_known, what="the building leader in the notify directory")
    made = await plan(
        client, town, {"kind": "compounds", "ids": [compound.id]}, lines=[{"item_id": package}]
    )
    assert made.status_code == 201, made.text
    to_leader = {"recipient_id": uuid.UUID(leader["id"])}

    async def heard(template_key: str) -> list[Message]:
        async def arrived() -> bool:
            return bool(await messages(platform, template_key=template_key, **to_leader))

        await eventually(arrived, what=f"the building leader's {template_key} message")
        return await messages(platform, template_key=template_key, **to_leader)

    [planned] = await heard("distribution_planned")
    assert planned.text.startswith("物资发放「Supply packages」已安排，本小区共2户")

    cancel = f"/v1/distribution-plans/{made.json()['id']}/cancel"
    done = await client.post(cancel, json={"reason": "duplicate plan"}, headers=h)
    assert done.status_code == 200, done.text
    [cancelled] = await heard("distribution_cancelled")
    # The plan's name, the households left undelivered; not the operator, nor their words.
    assert cancelled.text == (
        "物资发放「Supply packages」已取消，本小区尚未送达的2户不再发放，请通知志愿者停止配送。"
    )
    assert (cancelled.recipient_kind, cancelled.priority) == ("volunteer", "high")


async def test_a_rule_preview_with_a_time_no_clock_can_show_is_refused_naming_the_payload(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """An operator previewing a rule on a made-up event may type any time: one at the end
    of the calendar (9999-12-31 23:59 UTC is already next year in Beijing) is a 422 naming
    the payload, as a missing field is, not a 500; the consumer skips such an event too."""
    compound = await make_compound(client, town.id, town.operator, code="R1")
    await resident(client, compound, town.operator, name="王秀英", unit=0)
    await notify_knows(platform, 1)
    payloads = {
        "zone_sealed": {
            "compound_id": compound.id,
            "building_id": compound.building_id,
            "unit_id": compound.unit_ids[0],
            "to_level": "sealed",
            "at": "9999-12-31T23:59:59Z",
        },
        "transfer_overdue": {"compound_id": compound.id, "due_at": "9999-12-31T23:59:59Z"},
        "request_assigned": {"compound_id": compound.id, "due_at": "0001-01-01T05:00:00+08:00"},
    }
    for rule, payload in payloads.items():
        preview = await client.post(
            f"/v1/rules/{rule}/preview",
            json={"town_id": str(town.id), "payload": payload},
            headers=town.operator,
        )
        assert preview.status_code == 422, (rule, preview.text)
        assert [e["field"] for e in preview.json()["errors"]] == ["payload"], preview.text
    assert await messages(platform) == []


async def test_a_building_sealed_around_a_zoned_unit_tells_only_whom_it_changes(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """A unit's own zone wins over its building's (shared/directory/zones.py): sealing the
    building leaves a unit sealed before sealed (its residents heard it once, not twice)
    and seals a unit controlled before by its own recorded change (its residents hear of
    the seal once, from it). The building's other residents hear of the seal once."""
    compound = await make_compound(client, town.id, town.operator, code="R1")
    third = await post(
        client, "/v1/units", {"building_id": compound.building_id, "code": "3"}, town.operator
    )
    compound.unit_ids.append(third["id"])
    sealed_before = await resident(client, compound, town.operator, name="王秀英", unit=0)
    rest = await resident(client, compound, town.operator, name="李娜", unit=1)
    controlled = await resident(client, compound, town.operator, name="张伟", unit=2)
    await notify_knows(platform, 3)
    for unit, level in ((0, "sealed"), (2, "controlled")):
        zone = {
            "building_id": compound.building_id,
            "unit_id": compound.unit_ids[unit],
            "level": level,
            "reason": "contacts",
        }
        await post(client, "/v1/zones", zone, town.operator)

    async def units_told() -> bool:
        told = await messages(platform, cause_kind="event")
        return {m.template_key for m in told} == {"sealed", "zone_changed"}

    await eventually(units_told, what="the units' residents told of their zones")
    building = {"building_id": compound.building_id, "level": "sealed", "reason": "case"}
    await post(client, "/v1/zones", building, town.operator)

    async def building_told() -> bool:
        told = {m.recipient_id for m in await messages(platform, template_key="sealed")}
        return {uuid.UUID(rest["id"]), uuid.UUID(controlled["id"])} <= told

    await eventually(building_told, what="the building's residents told of its seal")
    await asyncio.sleep(0.5)
    told = sorted(
        (str(m.recipient_id), m.template_key) for m in await messages(platform, cause_kind="event")
    )
    assert told == sorted(
        [
            (sealed_before["id"], "sealed"),
            (rest["id"], "sealed"),
            (controlled["id"], "zone_changed"),
            (controlled["id"], "sealed"),
        ]
    )


async def test_a_building_sealed_tells_only_the_units_its_event_names_as_its_own_zone(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """The registry names the units zoned apart in the building's event: their residents
    hear of their own zone, not of the building's, even when notify's copy of the zones
    (fed by another consumer) has not yet heard that unit 1 was zoned on its own."""
    compound = await make_compound(client, town.id, town.operator, code="R1")
    inside = await resident(client, compound, town.operator, name="王秀英", unit=0)
    await resident(client, compound, town.operator, name="张伟", unit=1)
    await notify_knows(platform, 2)
    building = change(town.id, compound.building_id, compound.id)
    apart = building.model_copy(update={"units_apart": [uuid.UUID(compound.unit_ids[1])]})
    sealed = Envelope.wrap(apart, producer="registry", correlation_id="test-building-sealed")
    async with platform.runtime("notify").uow(Principal.system()) as uow:
        await fire(uow, sealed)
        await uow.commit()
    told = await messages(platform, template_key="sealed")
    assert [m.recipient_id for m in told] == [uuid.UUID(inside["id"])]


async def test_a_pool_positive_message_reveals_its_recipients_phone_only_to_health_readers(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """A positive pool's message says its recipient awaits a retest: health data. A building
    leader, who may not see who is concerned by health data (docs/architecture.md, personal
    data), is refused its phone (403), as on the case itself; the office reveals it, logged.
    The same leader still reveals a phone on a message that is no health data."""
    compound = await make_compound(client, town.id, town.operator, code="R1")
    member = await resident(client, compound, town.operator, name="王秀英")
    await notify_knows(platform, 1)
    positive = PoolPositive(
        round_id=uuid.uuid4(),
        tube_id=uuid.uuid4(),
        tube_code="P0001",
        town_id=town.id,
        compound_id=uuid.UUID(compound.id),
        member_ids=[uuid.UUID(member["id"])],
        resulted_at=datetime.now(UTC),
    )
    event = envelope(positive)
    await platform.transport.publish([Outgoing(str(event.id), event.type, event.to_bytes())])

    async def told() -> bool:
        return bool(await messages(platform, template_key="pool_positive"))

    await eventually(told, what="the pool's member told of the retest")
    [retest] = await messages(platform, template_key="pool_positive")
    zone = {"building_id": compound.building_id, "level": "sealed", "reason": "case"}
    await post(client, "/v1/zones", zone, town.operator)

    async def sealed() -> bool:
        return bool(await messages(platform, template_key="sealed"))

    await eventually(sealed, what="the building's residents told of its seal")
    [seal] = await messages(platform, template_key="sealed")
    leader = headers_for(
        platform,
        Role.building_leader,
        Scope.of(ScopeKind.buildings, towns=[town.id], buildings=[uuid.UUID(compound.building_id)]),
        "leader-1",
    )
    masked = await client.get(f"/v1/messages/{retest.id}", headers=leader)
    assert (masked.status_code, masked.json()["phone"]) == (200, "+86138****5678"), masked.text
    assert masked.json()["health_data"] is True
    refused = await client.get(f"/v1/messages/{retest.id}?reveal=true", headers=leader)
    assert refused.status_code == 403, refused.text
    listed = "/v1/messages?template_key=pool_positive&reveal=true"
    assert (await client.get(listed, headers=leader)).status_code == 403
    shown = await client.get(f"/v1/messages/{seal.id}?reveal=true", headers=leader)
    assert (shown.status_code, shown.json()["phone"]) == (200, "+8613812345678"), shown.text
    office = await client.get(f"/v1/messages/{retest.id}?reveal=true", headers=town.operator)
    assert (office.status_code, office.json()["phone"]) == (200, "+8613812345678"), office.text
