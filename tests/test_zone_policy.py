"""The zone policy: confirmed cases from the testing service seal their unit or building
exactly once, areas without a positive are proposed downgrades on the clock, operators decide
them within their scope, and the testing service's eligibility shows on the compound."""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from cordon.platform import Platform
from shared.bus.transport import Outgoing, Subscription
from shared.contracts.testing import CaseConfirmed, CompoundEpidemicFreeEligible
from shared.events import Envelope, Event
from shared.ids import new_id
from tests.conftest import Town, queue_cleanup
from tests.support import Compound, committee_staff, make_compound, outbox_events, post

DAY = timedelta(days=1)


def case_in(
    town: Town,
    compound: Compound,
    *,
    unit_id: str | None,
    confirmed_at: datetime | None = None,
) -> CaseConfirmed:
    return CaseConfirmed(
        case_id=new_id(),
        resident_id=new_id(),
        household_id=None,
        town_id=town.id,
        compound_id=uuid.UUID(compound.id),
        building_id=uuid.UUID(compound.building_id),
        unit_id=uuid.UUID(unit_id) if unit_id else None,
        round_id=None,
        tube_code="S-000123",
        source="single_tube",
        confirmed_at=confirmed_at or datetime.now(UTC),
        contacts=[],
    )


def eligible(town: Town, compound: Compound, at: datetime) -> CompoundEpidemicFreeEligible:
    return CompoundEpidemicFreeEligible(
        town_id=town.id,
        compound_id=uuid.UUID(compound.id),
        days_without_positive=14,
        last_positive_at=None,
        at=at,
    )


def envelope(event: Event) -> Envelope:
    return Envelope.wrap(event, producer="testing", correlation_id=f"test-{new_id()}")


async def deliver(platform: Platform, message: Envelope) -> bool:
    """Hand one event to the registry's zone-policy consumer, as its worker would."""
    runtime = platform.runtime("registry")
    [consumer] = [c for c in runtime.spec.consumers if c.name == "zone-policy"]
    return await runtime.process(consumer, message, queue=runtime.subscription(consumer).queue)


async def tick(platform: Platform, at: datetime) -> None:
    runtime = platform.runtime("registry")
    [job] = [j for j in runtime.spec.periodic if j.name == "zone-downgrades"]
    await runtime.tick(job, now=at)


async def zones(client: httpx.AsyncClient, compound: Compound, headers: Any) -> list[Any]:
    response = await client.get(f"/v1/zones?compound_id={compound.id}", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def the_zone(client: httpx.AsyncClient, compound: Compound, headers: Any) -> Any:
    [zone] = await zones(client, compound, headers)
    return zone


async def proposals(client: httpx.AsyncClient, headers: Any, status: str = "pending") -> list[Any]:
    response = await client.get(f"/v1/zones/proposals?status={status}", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def clock(zone: Any) -> datetime:
    return datetime.fromisoformat(zone["quiet_since"])


async def test_a_case_delivered_twice_on_the_bus_seals_its_unit_once(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    case = case_in(town, compound, unit_id=compound.unit_ids[1])
    message = envelope(case)
    queue = f"{platform.settings.schema_prefix}test.zone-changes"
    subscription = Subscription(queue, ("registry.zone.changed",))
    await platform.transport.declare(subscription)
    changes: list[Envelope] = []

    async def collect(received: Envelope) -> None:
        changes.append(received)

    listener = asyncio.create_task(platform.transport.consume(subscription, collect))
    try:
        # The same event twice (a redelivery), then an eligibility the consumer takes after it.
        later = envelope(eligible(town, compound, datetime.now(UTC)))
        await platform.transport.publish(
            [Outgoing(str(m.id), m.type, m.to_bytes()) for m in (message, message, later)]
        )
        url = f"/v1/compounds/{compound.id}"
        for _ in range(200):
            shown = (await client.get(url, headers=town.operator)).json()
            if shown["epidemic_free_eligible_since"] is not None and changes:
                break
            await asyncio.sleep(0.05)
        await platform.runtime("registry").relay.drain()
        await asyncio.sleep(0.5)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await queue_cleanup(platform, [queue])

    zone = await the_zone(client, compound, town.operator)
    assert (zone["unit_id"], zone["level"], zone["set_by"]) == (
        compound.unit_ids[1],
        "sealed",
        "zone-policy",
    )
    assert zone["reason"].startswith(f"case {case.case_id} confirmed ")
    history = await client.get(
        f"/v1/zones/history?unit_id={compound.unit_ids[1]}", headers=town.operator
    )
    assert len(history.json()) == 1
    assert [(c.payload["unit_id"], c.payload["to_level"]) for c in changes] == [
        (compound.unit_ids[1], "sealed")
    ]
    assert shown["epidemic_free_eligible_since"] is not None
    assert shown["status"] == "normal"


async def test_a_town_that_seals_buildings_seals_the_case_s_building(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    staff = await committee_staff(client, town, compound, "staff-p1")
    url = f"/v1/towns/{town.id}/zone-policy"
    refused = await client.patch(url, json={"seal_granularity": "building"}, headers=staff)
    assert refused.status_code == 403
    bad = await client.patch(url, json={"downgrade_after_days": 0}, headers=town.operator)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "downgrade_after_days"
    policy = await client.patch(url, json={"seal_granularity": "building"}, headers=town.operator)
    assert policy.status_code == 200, policy.text
    assert (policy.json()["seal_granularity"], policy.json()["downgrade_after_days"]) == (
        "building",
        7,
    )

    assert await deliver(platform, envelope(case_in(town, compound, unit_id=compound.unit_ids[0])))
    zone = await the_zone(client, compound, town.operator)
    assert (zone["building_id"], zone["unit_id"], zone["level"]) == (
        compound.building_id,
        None,
        "sealed",
    )
    # A case next door in the sealed building changes no zone.
    assert await deliver(platform, envelope(case_in(town, compound, unit_id=compound.unit_ids[1])))
    assert len(await zones(client, compound, town.operator)) == 1
    assert len(await outbox_events(platform, "registry.zone.changed")) == 1


async def test_a_case_without_a_unit_seals_its_building(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    message = envelope(case_in(town, compound, unit_id=None))
    assert await deliver(platform, message)
    assert not await deliver(platform, message)
    zone = await the_zone(client, compound, town.operator)
    assert (zone["unit_id"], zone["level"]) == (None, "sealed")
    [changed] = await outbox_events(platform, "registry.zone.changed")
    assert changed["compound_id"] == compound.id
    assert changed["payload"]["set_by"] == "zone-policy"


async def test_seven_quiet_days_propose_a_downgrade_that_an_approval_applies(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    await deliver(platform, envelope(case_in(town, compound, unit_id=compound.unit_ids[0])))
    sealed_at = clock(await the_zone(client, compound, town.operator))

    await tick(platform, sealed_at + 6 * DAY)
    assert await proposals(client, town.operator) == []
    # Every worker replica runs the job, at the same moment too.
    await asyncio.gather(tick(platform, sealed_at + 7 * DAY), tick(platform, sealed_at + 7 * DAY))
    [proposal] = await proposals(client, town.operator)
    assert (proposal["from_level"], proposal["to_level"]) == ("sealed", "controlled")
    assert proposal["unit_id"] == compound.unit_ids[0]
    await tick(platform, sealed_at + 7 * DAY)
    await tick(platform, sealed_at + 9 * DAY)
    assert [p["id"] for p in await proposals(client, town.operator, "pending")] == [proposal["id"]]
    assert (await the_zone(client, compound, town.operator))["level"] == "sealed"
    assert len(await outbox_events(platform, "registry.zone.changed")) == 1

    approve = f"/v1/zones/proposals/{proposal['id']}/approve"
    approved = await post(client, approve, {"note": "sampled negative twice"}, town.operator)
    assert (approved["status"], approved["decided_by"]) == ("approved", "operator")
    zone = await the_zone(client, compound, town.operator)
    assert zone["level"] == "controlled"
    changes = await outbox_events(platform, "registry.zone.changed")
    assert [(c["payload"]["from_level"], c["payload"]["to_level"]) for c in changes] == [
        (None, "sealed"),
        ("sealed", "controlled"),
    ]
    again = await client.post(approve, json={}, headers=town.operator)
    assert again.status_code == 409

    # Seven more days at controlled propose precaution.
    controlled_at = clock(zone)
    await tick(platform, controlled_at + 6 * DAY)
    assert await proposals(client, town.operator) == []
    await tick(platform, controlled_at + 7 * DAY)
    [following] = await proposals(client, town.operator)
    assert (following["from_level"], following["to_level"]) == ("controlled", "precaution")


async def test_a_rejection_keeps_the_zone_and_restarts_its_clock(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    policy = await client.patch(
        f"/v1/towns/{town.id}/zone-policy", json={"downgrade_after_days": 10}, headers=town.operator
    )
    assert policy.json()["seal_granularity"] == "unit"
    await deliver(platform, envelope(case_in(town, compound, unit_id=compound.unit_ids[0])))
    sealed_at = clock(await the_zone(client, compound, town.operator))
    await tick(platform, sealed_at + 7 * DAY)
    assert await proposals(client, town.operator) == []
    await tick(platform, sealed_at + 10 * DAY)
    [proposal] = await proposals(client, town.operator)

    reject = f"/v1/zones/proposals/{proposal['id']}/reject"
    rejected = await post(client, reject, {"note": "contacts still untested"}, town.operator)
    assert (rejected["status"], rejected["note"]) == ("rejected", "contacts still untested")
    zone = await the_zone(client, compound, town.operator)
    assert zone["level"] == "sealed"
    assert clock(zone) == datetime.fromisoformat(rejected["decided_at"])
    assert len(await outbox_events(platform, "registry.zone.changed")) == 1

    await tick(platform, sealed_at + 10 * DAY)
    await tick(platform, clock(zone) + 9 * DAY)
    assert await proposals(client, town.operator) == []
    await tick(platform, clock(zone) + 10 * DAY)
    [proposed_again] = await proposals(client, town.operator)
    assert proposed_again["id"] != proposal["id"]


async def test_a_case_in_a_sealed_area_supersedes_its_proposal_and_restarts_its_clock(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    unit = compound.unit_ids[0]
    await deliver(platform, envelope(case_in(town, compound, unit_id=unit)))
    sealed_at = clock(await the_zone(client, compound, town.operator))
    await tick(platform, sealed_at + 7 * DAY)
    [proposal] = await proposals(client, town.operator)

    second = case_in(town, compound, unit_id=unit, confirmed_at=sealed_at + 8 * DAY)
    await deliver(platform, envelope(second))
    zone = await the_zone(client, compound, town.operator)
    assert zone["level"] == "sealed"
    assert clock(zone) == datetime.fromisoformat(zone["last_positive_at"]) == second.confirmed_at
    [superseded] = await proposals(client, town.operator, "superseded")
    assert superseded["id"] == proposal["id"]
    assert superseded["note"].startswith(f"case {second.case_id} confirmed")
    assert len(await outbox_events(platform, "registry.zone.changed")) == 1

    await tick(platform, second.confirmed_at + 6 * DAY)
    assert await proposals(client, town.operator) == []
    await tick(platform, second.confirmed_at + 7 * DAY)
    assert len(await proposals(client, town.operator)) == 1
    gone = await client.post(
        f"/v1/zones/proposals/{proposal['id']}/approve", json={}, headers=town.operator
    )
    assert gone.status_code == 409
    assert (await the_zone(client, compound, town.operator))["level"] == "sealed"


async def test_a_case_clears_the_compound_s_epidemic_free_eligibility(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    since = datetime(2022, 5, 20, 8, 0, tzinfo=UTC)
    await deliver(platform, envelope(eligible(town, compound, since)))
    await deliver(platform, envelope(eligible(town, compound, since + DAY)))
    shown = (await client.get(f"/v1/compounds/{compound.id}", headers=town.operator)).json()
    assert datetime.fromisoformat(shown["epidemic_free_eligible_since"]) == since
    await deliver(platform, envelope(case_in(town, compound, unit_id=compound.unit_ids[0])))
    shown = (await client.get(f"/v1/compounds/{compound.id}", headers=town.operator)).json()
    assert shown["epidemic_free_eligible_since"] is None


async def test_committee_staff_decide_only_their_own_compounds_proposals(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    ours = await make_compound(client, town.id, town.operator, code="P1")
    theirs = await make_compound(client, town.id, town.operator, code="P2")
    our_staff = await committee_staff(client, town, ours, "staff-p1")
    their_staff = await committee_staff(client, town, theirs, "staff-p2")
    await deliver(platform, envelope(case_in(town, ours, unit_id=ours.unit_ids[0])))
    sealed_at = clock(await the_zone(client, ours, town.operator))
    await tick(platform, sealed_at + 7 * DAY)
    [proposal] = await proposals(client, our_staff)

    assert await proposals(client, their_staff) == []
    for decision in ("approve", "reject"):
        refused = await client.post(
            f"/v1/zones/proposals/{proposal['id']}/{decision}", json={}, headers=their_staff
        )
        assert refused.status_code in (403, 404)
    assert (await proposals(client, town.operator))[0]["status"] == "pending"

    approved = await post(client, f"/v1/zones/proposals/{proposal['id']}/approve", {}, our_staff)
    assert approved["decided_by"] == "staff-p1"
    assert (await the_zone(client, ours, our_staff))["level"] == "controlled"


async def test_approving_a_units_downgrade_under_its_sealed_building_is_an_explicit_downgrade(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    unit = {"building_id": compound.building_id, "unit_id": compound.unit_ids[0]}
    await post(client, "/v1/zones", {**unit, "level": "sealed", "reason": "case"}, town.operator)
    building = {"building_id": compound.building_id, "level": "sealed", "reason": "spread"}
    await post(client, "/v1/zones", building, town.operator)
    latest = max(clock(z) for z in await zones(client, compound, town.operator))
    await tick(platform, latest + 7 * DAY)
    [proposal] = [p for p in await proposals(client, town.operator) if p["unit_id"]]
    approve = f"/v1/zones/proposals/{proposal['id']}/approve"
    approved = await client.post(approve, json={"note": "unit clean"}, headers=town.operator)
    assert approved.status_code == 200, approved.text
    history = await client.get(
        f"/v1/zones/history?unit_id={compound.unit_ids[0]}", headers=town.operator
    )
    latest_change = history.json()[0]
    assert (latest_change["from_level"], latest_change["to_level"]) == ("sealed", "controlled")
