"""Zones and compound status: history, events, idempotent settings, who may change them,
and zones as residents see them."""

import asyncio
import contextlib
import uuid

import httpx

from cordon.platform import Platform
from shared.bus.transport import Subscription
from shared.events import Envelope
from tests.conftest import Town, queue_cleanup
from tests.support import (
    committee_staff,
    make_building,
    make_compound,
    make_resident,
    outbox_events,
    post,
)


async def test_a_sealed_unit_is_listed_with_its_history(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    unit = compound.unit_ids[1]
    body = {"building_id": compound.building_id, "unit_id": unit, "reason": "case in 2-301"}
    sealed = await post(client, "/v1/zones", {**body, "level": "sealed"}, town.operator)
    assert sealed["changed"] and sealed["zone"]["level"] == "sealed"
    again = await post(client, "/v1/zones", {**body, "level": "sealed"}, town.operator)
    assert again["changed"] is False
    await post(client, "/v1/zones", {**body, "level": "controlled"}, town.operator)
    await post(client, "/v1/zones", {**body, "level": None}, town.operator)

    current = await client.get(f"/v1/zones?compound_id={compound.id}", headers=town.operator)
    assert current.json()["items"] == []
    history = await client.get(f"/v1/zones/history?unit_id={unit}", headers=town.operator)
    steps = [(h["from_level"], h["to_level"]) for h in reversed(history.json())]
    assert steps == [(None, "sealed"), ("sealed", "controlled"), ("controlled", None)]
    assert {h["set_by"] for h in history.json()} == {"operator"}
    assert len(await outbox_events(platform, "registry.zone.changed")) == 3
    # A compound's history (the console's compound page): its changes only.
    other = await make_compound(client, town.id, town.operator, code="P2")
    elsewhere = {"building_id": other.building_id, "reason": "contacts", "level": "controlled"}
    await post(client, "/v1/zones", elsewhere, town.operator)
    by_compound = await client.get(
        f"/v1/zones/history?compound_id={compound.id}", headers=town.operator
    )
    assert [h["id"] for h in by_compound.json()] == [h["id"] for h in history.json()]


async def test_residents_carry_their_units_zone_over_their_buildings(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator)
    building = {"building_id": compound.building_id, "reason": "contacts in building 1"}
    await post(client, "/v1/zones", {**building, "level": "controlled"}, town.operator)
    unit = {**building, "unit_id": compound.unit_ids[0], "reason": "case"}
    await post(client, "/v1/zones", {**unit, "level": "sealed"}, town.operator)
    found = await client.get("/v1/residents?zone=sealed", headers=town.operator)
    assert [r["id"] for r in found.json()["items"]] == [resident["id"]]
    assert found.json()["items"][0]["zone"] == "sealed"
    controlled = await client.get("/v1/residents?zone=controlled", headers=town.operator)
    assert controlled.json()["items"] == []
    counts = await client.get("/v1/zones/counts", headers=town.operator)
    assert {(c["level"], c["buildings"], c["units"]) for c in counts.json()} == {
        ("controlled", 1, 0),
        ("sealed", 0, 1),
    }


async def test_bad_zone_requests_are_refused(client: httpx.AsyncClient, town: Town) -> None:
    first = await make_compound(client, town.id, town.operator, code="P1")
    second = await make_compound(client, town.id, town.operator, code="P2")
    wrong_unit = await client.post(
        "/v1/zones",
        json={
            "building_id": first.building_id,
            "unit_id": second.unit_ids[0],
            "level": "sealed",
            "reason": "x",
        },
        headers=town.operator,
    )
    assert wrong_unit.status_code == 422
    assert wrong_unit.json()["errors"][0]["field"] == "unit_id"
    no_reason = await client.post(
        "/v1/zones",
        json={"building_id": first.building_id, "level": "sealed", "reason": ""},
        headers=town.operator,
    )
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"

    staff = await committee_staff(client, town, second, "staff-p2")
    foreign = await client.post(
        "/v1/zones",
        json={"building_id": first.building_id, "level": "sealed", "reason": "x"},
        headers=staff,
    )
    assert foreign.status_code in (403, 404)
    await post(
        client,
        "/v1/users",
        {
            "username": "leader-1",
            "password": "leader-password-1",
            "role": "building_leader",
            "town_id": str(town.id),
        },
        town.operator,
    )
    leader = await town.sign_in("leader-1", "leader-password-1")
    refused = await client.post(
        "/v1/zones",
        json={"building_id": first.building_id, "level": "sealed", "reason": "x"},
        headers=leader,
    )
    assert refused.status_code in (403, 404)


async def test_compound_status_closes_reopens_and_only_operators_declare_it_free(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    staff = await committee_staff(client, town, compound, "staff-p1")
    url = f"/v1/compounds/{compound.id}/status"
    closed = await client.patch(url, json={"status": "closed", "reason": "01:30"}, headers=staff)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    free = await client.patch(
        url, json={"status": "epidemic_free", "reason": "14 days"}, headers=staff
    )
    assert free.status_code == 403
    reopened = await client.patch(
        url, json={"status": "normal", "reason": "cleared"}, headers=town.operator
    )
    assert reopened.json()["status"] == "normal" and reopened.json()["status_reason"] == "cleared"
    assert len(await outbox_events(platform, "registry.compound.status_changed")) == 2


async def test_zone_changes_reach_a_consumer_on_the_bus(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    queue = f"{platform.settings.schema_prefix}test.zones"
    subscription = Subscription(queue, ("registry.zone.changed",))
    await platform.transport.declare(subscription)
    received: list[Envelope] = []
    consumer = None
    try:
        body = {"building_id": compound.building_id, "reason": "case"}
        await post(client, "/v1/zones", {**body, "level": "sealed"}, town.operator)
        await post(client, "/v1/zones", {**body, "level": "controlled"}, town.operator)
        await platform.runtime("registry").relay.drain()

        async def collect(envelope: Envelope) -> None:
            received.append(envelope)

        consumer = asyncio.create_task(platform.transport.consume(subscription, collect))
        for _ in range(100):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        await queue_cleanup(platform, [queue])
    steps = [(e.payload["from_level"], e.payload["to_level"]) for e in received]
    assert steps == [(None, "sealed"), ("sealed", "controlled")]
    assert {str(e.compound_id) for e in received} == {compound.id}


async def test_a_unit_set_below_its_sealed_building_is_an_explicit_recorded_downgrade(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator, unit=1)
    building = {"building_id": compound.building_id, "reason": "cases in building 1"}
    await post(client, "/v1/zones", {**building, "level": "sealed"}, town.operator)
    unit = {**building, "unit_id": compound.unit_ids[1], "reason": "unit 2 negative"}

    # Not a side effect: precaution on a unit of a sealed building would release it.
    refused = await client.post(
        "/v1/zones", json={**unit, "level": "precaution"}, headers=town.operator
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"][0]["field"] == "downgrade"
    assert "sealed" in refused.json()["detail"]
    still = await client.get("/v1/residents?zone=sealed", headers=town.operator)
    assert [r["id"] for r in still.json()["items"]] == [resident["id"]]

    # Sealing it more, or as much, is no downgrade.
    await post(
        client, "/v1/zones", {**unit, "level": "sealed", "reason": "own seal"}, town.operator
    )
    again = await client.post(
        "/v1/zones", json={**unit, "level": "controlled"}, headers=town.operator
    )
    assert again.status_code == 409
    await post(
        client, "/v1/zones", {**unit, "level": None, "reason": "building's seal"}, town.operator
    )

    done = await post(
        client, "/v1/zones", {**unit, "level": "precaution", "downgrade": True}, town.operator
    )
    assert done["changed"] and done["zone"]["level"] == "precaution"
    history = await client.get(
        f"/v1/zones/history?unit_id={compound.unit_ids[1]}", headers=town.operator
    )
    latest = history.json()[0]
    assert (latest["from_level"], latest["to_level"], latest["from_inherited"]) == (
        "sealed",
        "precaution",
        True,
    )
    events = await outbox_events(platform, "registry.zone.changed")
    assert (events[-1]["payload"]["from_level"], events[-1]["payload"]["from_inherited"]) == (
        "sealed",
        True,
    )


async def test_a_building_sealed_seals_its_units_zoned_below_it_each_recorded(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """A case in building 1 at night: the whole building is sealed, its unit 2 too, though
    unit 2 was controlled on its own before (its own zone would otherwise win and keep it
    out of the seal). Relaxing the building later takes no unit's seal away by itself."""
    compound = await make_compound(client, town.id, town.operator, code="P1")
    first = await make_resident(client, compound, town.operator, household="101", unit=0)
    second = await make_resident(client, compound, town.operator, household="201", unit=1)
    building = {"building_id": compound.building_id, "reason": "case in unit 1"}
    unit = {"building_id": compound.building_id, "unit_id": compound.unit_ids[1]}
    await post(
        client,
        "/v1/zones",
        {**unit, "level": "controlled", "reason": "close contact"},
        town.operator,
    )

    await post(client, "/v1/zones", {**building, "level": "sealed"}, town.operator)
    sealed = await client.get("/v1/residents?zone=sealed", headers=town.operator)
    assert {r["id"] for r in sealed.json()["items"]} == {first["id"], second["id"]}
    history = await client.get(
        f"/v1/zones/history?unit_id={compound.unit_ids[1]}", headers=town.operator
    )
    latest = history.json()[0]
    assert (latest["from_level"], latest["to_level"]) == ("controlled", "sealed")
    assert "case in unit 1" in latest["reason"]
    events = await outbox_events(platform, "registry.zone.changed")
    assert [(e["payload"]["unit_id"], e["payload"]["to_level"]) for e in events[-2:]] == [
        (None, "sealed"),
        (compound.unit_ids[1], "sealed"),
    ]
    # The building's change names the units that keep a zone of their own, so a consumer
    # tells the right residents even before its copy of the zones has caught up.
    assert events[-2]["payload"]["units_apart"] == [compound.unit_ids[1]]

    # Relaxing the building is no sealing: the unit keeps its seal until it is lifted.
    await post(
        client, "/v1/zones", {**building, "level": "controlled", "reason": "14 days"}, town.operator
    )
    still = await client.get("/v1/residents?zone=sealed", headers=town.operator)
    assert [r["id"] for r in still.json()["items"]] == [second["id"]]


async def _found_eligible(platform: Platform, town: Town, compound_id: str) -> None:
    """The testing service's report arrives: the compound went its run of days clean."""
    from datetime import UTC, datetime

    from services.registry.zones.policy import mark_epidemic_free_eligible
    from shared.auth import Principal
    from shared.contracts.testing import CompoundEpidemicFreeEligible

    event = CompoundEpidemicFreeEligible(
        town_id=town.id,
        compound_id=uuid.UUID(compound_id),
        days_without_positive=14,
        last_positive_at=None,
        at=datetime.now(UTC),
    )
    async with platform.runtime("registry").uow(Principal.system()) as uow:
        await mark_epidemic_free_eligible(uow, event=event)
        await uow.commit()


async def test_epidemic_free_needs_eligibility_and_no_seal_or_an_operators_recorded_override(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    url = f"/v1/compounds/{compound.id}/status"
    free = {"status": "epidemic_free", "reason": "14 days"}
    building = {"building_id": compound.building_id, "reason": "case", "level": "sealed"}
    await post(client, "/v1/zones", building, town.operator)

    refused = await client.patch(url, json=free, headers=town.operator)
    assert refused.status_code == 409, refused.text
    messages = " ".join(e["message"] for e in refused.json()["errors"])
    assert "never found eligible" in messages and "building 1 is sealed" in messages
    await _found_eligible(platform, town, compound.id)
    still = await client.patch(url, json=free, headers=town.operator)
    assert still.status_code == 409
    assert [e["message"] for e in still.json()["errors"]] == ["building 1 is sealed"]

    lifted = {**building, "level": None, "reason": "cleared"}
    await post(client, "/v1/zones", lifted, town.operator)
    declared = await client.patch(url, json=free, headers=town.operator)
    assert declared.status_code == 200 and declared.json()["status"] == "epidemic_free"


async def test_a_town_operator_overrides_epidemic_free_only_with_a_recorded_reason(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    url = f"/v1/compounds/{compound.id}/status"
    body = {"status": "epidemic_free", "reason": "14 days", "override_reason": "   "}
    blank = await client.patch(url, json=body, headers=town.operator)
    assert blank.status_code in (409, 422)
    body["override_reason"] = "district order 2022-05-31: counted from the lab's late report"
    declared = await client.patch(url, json=body, headers=town.operator)
    assert declared.status_code == 200, declared.text
    [event] = await outbox_events(platform, "registry.compound.status_changed")
    assert event["payload"]["override_reason"] == body["override_reason"]
    assert "never found eligible" in event["payload"]["overridden"][0]
    assert "override" in declared.json()["status_reason"]


async def test_households_and_people_per_zone_level_count_what_units_inherit(
    client: httpx.AsyncClient, town: Town
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    other = await make_building(client, compound, town.operator, code="2")
    for household, unit, name in (
        ("101", 0, "甲"),
        ("101", 0, "乙"),
        ("102", 0, "丙"),
        ("201", 1, "丁"),
    ):
        await make_resident(
            client, compound, town.operator, household=household, unit=unit, name=name
        )
    await make_resident(client, other, town.operator, household="101", name="戊")
    sealed = {"building_id": compound.building_id, "level": "sealed", "reason": "cases"}
    await post(client, "/v1/zones", sealed, town.operator)
    precaution = {"building_id": other.building_id, "level": "precaution", "reason": "near"}
    await post(client, "/v1/zones", precaution, town.operator)

    async def population(by: str) -> set[tuple[object, ...]]:
        response = await client.get(
            f"/v1/zones/population?compound_id={compound.id}&by={by}", headers=town.operator
        )
        assert response.status_code == 200, response.text
        return {
            (g["building_code"], g["unit_code"], g["level"], g["households"], g["people"])
            for g in response.json()
        }

    assert await population("compound") == {
        (None, None, "sealed", 3, 4),
        (None, None, "precaution", 1, 1),
    }
    assert await population("building") == {
        ("1", None, "sealed", 3, 4),
        ("2", None, "precaution", 1, 1),
    }
    # Unit 2 has no zone of its own: its building's seal is its level.
    assert await population("unit") == {
        ("1", "1", "sealed", 2, 3),
        ("1", "2", "sealed", 1, 1),
        ("2", "1", "precaution", 1, 1),
    }
    wrong = await client.get("/v1/zones/population?by=street", headers=town.operator)
    assert wrong.status_code == 422
