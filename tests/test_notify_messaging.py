"""Notify messaging: segment counting, templates with typed variables, broadcasts (scope,
approval, cancellation, opt-outs, phones that cannot receive SMS) and the audit."""

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cordon.platform import Platform
from services.notify.broadcasts import service as broadcasts
from services.notify.settings import get_notify_settings
from services.notify.templates.segments import count_segments
from shared.auth import Role, Scope, ScopeKind
from tests.conftest import Town
from tests.notify_support import messages, notify_knows, resident
from tests.support import committee_staff, eventually, headers_for, make_compound

SIGNATURE = "【某某街道】"


@pytest.mark.parametrize(
    ("text", "signature", "encoding", "units", "segments"),
    [
        ("a" * 160, "", "gsm7", 160, 1),
        ("a" * 161, "", "gsm7", 161, 2),
        ("a" * 306, "", "gsm7", 306, 2),
        ("a" * 307, "", "gsm7", 307, 3),
        # Extended characters are an escape and a septet.
        ("€" * 80, "", "gsm7", 160, 1),
        ("a" * 150 + "{}[]~", "", "gsm7", 160, 1),
        ("a" * 159 + "^", "", "gsm7", 161, 2),
        # An escape pair is never split: 152 + 2 does not fit a part of 153.
        ("a" * 152 + "|" + "a" * 10, "", "gsm7", 164, 2),
        ("a" * 152 + "|" + "a" * 152, "", "gsm7", 306, 3),
        # Chinese is UCS-2: 70, then 67 per part.
        ("封" * 70, "", "ucs2", 70, 1),
        ("封" * 71, "", "ucs2", 71, 2),
        ("封" * 134, "", "ucs2", 134, 2),
        ("封" * 135, "", "ucs2", 135, 3),
        # One character outside GSM-7 makes the whole text UCS-2.
        ("a" * 69 + "é", "", "gsm7", 70, 1),
        ("a" * 70 + "ç", "", "ucs2", 71, 2),
        # An emoji is two UTF-16 units, and a part never splits it.
        ("😷" * 35, "", "ucs2", 70, 1),
        ("😷" * 36, "", "ucs2", 72, 2),
        ("a" * 66 + "😷" + "a" * 10, "", "ucs2", 78, 2),
        # The signature counts, and a Chinese one makes an English text UCS-2.
        ("Stay at home", SIGNATURE, "ucs2", 18, 1),
        ("a" * 64, SIGNATURE, "ucs2", 70, 1),
        ("a" * 65, SIGNATURE, "ucs2", 71, 2),
        ("a" * 152, "[Town]", "gsm7", 160, 1),
        ("a" * 153, "[Town]", "gsm7", 161, 2),
        ("", "", "gsm7", 0, 0),
    ],
)
def test_segments_are_counted_as_the_provider_bills_them(
    text: str, signature: str, encoding: str, units: int, segments: int
) -> None:
    counted = count_segments(text, signature=signature)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, segments)


def _soon(hours: float = 6) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def round_variables() -> dict[str, Any]:
    start = datetime(2022, 4, 2, 5, 0, tzinfo=UTC)
    return {
        "round": "Night round",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=6)).isoformat(),
    }


def broadcast_body(town: Town, scope: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {
        "town_id": str(town.id),
        "scope": scope,
        "template_key": "round_scheduled",
        "variables": round_variables(),
        "priority": "high",
        "valid_until": _soon(),
    }
    return {**body, **changes}


async def test_templates_show_their_cost_and_keep_every_version(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    listed = await client.get(f"/v1/templates?town_id={town.id}", headers=town.operator)
    assert listed.status_code == 200, listed.text
    by_key = {t["key"]: t for t in listed.json()}
    assert {"sealed", "round_scheduled", "pool_positive", "case_confirmed", "zone_changed"} <= set(
        by_key
    )
    sealed = by_key["sealed"]
    assert (sealed["version"], sealed["built_in"], set(sealed["texts"])) == (
        1,
        True,
        {"zh-CN", "en"},
    )
    assert {length["encoding"] for length in sealed["lengths"]} == {"ucs2"}

    edit = {
        "town_id": str(town.id),
        "variables": {"area": "str", "time": "datetime"},
        "texts": {"zh-CN": "{area}自{time}起封控，请居家。", "en": "{area}: sealed from {time}."},
    }
    response = await client.post("/v1/templates/sealed/versions", json=edit, headers=town.operator)
    assert response.status_code == 201, response.text
    assert (response.json()["version"], response.json()["built_in"]) == (2, False)
    # A variable no rule using the template provides would fail at send time: refused now.
    broken = {**edit, "variables": {"area": "str", "time": "datetime", "gate": "str"}}
    refused = await client.post("/v1/templates/sealed/versions", json=broken, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "variables.gate"
    unknown = {**edit, "texts": {"zh-CN": "{area}{gate}"}}
    refused = await client.post(
        "/v1/templates/sealed/versions", json=unknown, headers=town.operator
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "texts.zh-CN"

    versions = await client.get(
        f"/v1/templates/sealed/versions?town_id={town.id}", headers=town.operator
    )
    assert [v["version"] for v in versions.json()] == [1, 2]
    preview = await client.post(
        "/v1/templates/sealed/preview",
        json={
            "town_id": str(town.id),
            "variables": {"area": "幸福小区 3-2", "time": "2022-04-01T17:30:00Z"},
        },
        headers=town.operator,
    )
    assert preview.status_code == 200, preview.text
    texts = {t["locale"]: t for t in preview.json()["texts"]}
    # The town's wall clock (UTC+8) in each locale's words.
    assert texts["zh-CN"]["text"] == "幸福小区 3-2自4月2日 01:30起封控，请居家。"
    assert texts["en"]["text"] == "幸福小区 3-2: sealed from 2 Apr 01:30."
    assert preview.json()["version"] == 2


async def test_a_missing_or_mistyped_variable_is_refused_when_the_broadcast_is_made(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="M1")
    await resident(client, compound, town.operator, name="王秀英")
    await notify_knows(platform, 1)
    scope = {"kind": "compounds", "ids": [compound.id]}
    missing = {k: v for k, v in round_variables().items() if k != "start"}
    cases = [
        ({"variables": missing}, "variables.start"),
        ({"variables": {**round_variables(), "start": "tomorrow"}}, "variables.start"),
        ({"variables": {**round_variables(), "start": "2022-04-02T05:00:00"}}, "variables.start"),
        ({"variables": {**round_variables(), "round": 7}}, "variables.round"),
        ({"variables": {**round_variables(), "gate": "North"}}, "variables.gate"),
        ({"template_key": "no_such_template"}, "template_key"),
    ]
    for changes, field in cases:
        body = broadcast_body(town, scope, **changes)
        response = await client.post("/v1/broadcasts", json=body, headers=town.operator)
        assert response.status_code in (404, 422), response.text
        assert field in [e["field"] for e in response.json()["errors"]], response.text
    late = broadcast_body(town, scope, send_at=_soon(7), valid_until=_soon(6))
    response = await client.post("/v1/broadcasts", json=late, headers=town.operator)
    assert response.status_code == 422, response.text
    listed = await client.get("/v1/broadcasts", headers=town.operator)
    assert listed.json()["items"] == []


async def test_a_town_wide_broadcast_waits_for_a_second_operator(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="M1")
    await resident(client, compound, town.operator, name="王秀英")
    await resident(client, compound, town.operator, name="Anna", language="en", unit=1)
    await notify_knows(platform, 2)
    staff = await committee_staff(client, town, compound, "staff-m1")
    body = broadcast_body(town, {"kind": "town"})
    refused = await client.post("/v1/broadcasts", json=body, headers=staff)
    assert refused.status_code == 403, refused.text

    created = await client.post("/v1/broadcasts", json=body, headers=town.operator)
    assert created.status_code == 201, created.text
    broadcast = created.json()
    assert (broadcast["status"], broadcast["town_wide"]) == ("awaiting_approval", True)
    assert broadcast["progress"]["recipients"] == 2
    assert await messages(platform) == []
    waiting = await client.get("/v1/broadcasts?status=awaiting_approval", headers=town.operator)
    assert [b["id"] for b in waiting.json()["items"]] == [broadcast["id"]]

    url = f"/v1/broadcasts/{broadcast['id']}/approve"
    own = await client.post(url, headers=town.operator)
    assert own.status_code == 403, own.text
    second = headers_for(
        platform, Role.town_operator, Scope.of(ScopeKind.towns, towns=[town.id]), "operator-2"
    )
    approved = await client.post(url, headers=second)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["approved_by"]) == ("enqueued", "operator-2")
    sent = await messages(platform, broadcast_id=uuid.UUID(broadcast["id"]))
    assert sorted(m.language for m in sent) == ["en", "zh-CN"]
    assert {m.cause_kind for m in sent} == {"broadcast"}
    again = await client.post(url, headers=second)
    assert again.status_code == 409
    # The audit, a page at a time: each message once, the cursor leading to the next.
    url = f"/v1/messages?broadcast_id={broadcast['id']}&template_key=round_scheduled&limit=1"
    first = (await client.get(url, headers=town.operator)).json()
    second_page = await client.get(f"{url}&cursor={first['next_cursor']}", headers=town.operator)
    assert second_page.json()["next_cursor"] is None
    paged = first["items"] + second_page.json()["items"]
    assert sorted(m["id"] for m in paged) == sorted(str(m.id) for m in sent)
    assert (await client.get("/v1/broadcasts?status=awaiting_approval", headers=second)).json()[
        "items"
    ] == []


async def test_committee_staff_broadcast_only_to_their_compounds(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    mine = await make_compound(client, town.id, town.operator, code="M1")
    other = await make_compound(client, town.id, town.operator, code="M2")
    await resident(client, mine, town.operator, name="王秀英")
    await resident(client, other, town.operator, name="李娜")
    await notify_knows(platform, 2)
    staff = await committee_staff(client, town, mine, "staff-m1")

    for scope in (
        {"kind": "compounds", "ids": [other.id]},
        {"kind": "buildings", "ids": [other.building_id]},
        {"kind": "compounds", "ids": [mine.id, other.id]},
    ):
        refused = await client.post(
            "/v1/broadcasts", json=broadcast_body(town, scope), headers=staff
        )
        assert refused.status_code == 404, refused.text
    level = {"kind": "zone_level", "zone_level": "sealed"}
    refused = await client.post("/v1/broadcasts", json=broadcast_body(town, level), headers=staff)
    assert refused.status_code == 403, refused.text
    assert await messages(platform) == []

    scope = {"kind": "compounds", "ids": [mine.id]}
    created = await client.post("/v1/broadcasts", json=broadcast_body(town, scope), headers=staff)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "enqueued"
    assert created.json()["progress"]["states"]["queued"] == 1
    assert [m.compound_id for m in await messages(platform)] == [uuid.UUID(mine.id)]
    # The other committee's staff neither see it nor can cancel it.
    outsider = await committee_staff(client, town, other, "staff-m2")
    url = f"/v1/broadcasts/{created.json()['id']}"
    assert (await client.get(url, headers=outsider)).status_code == 404
    assert (await client.post(f"{url}/cancel", headers=outsider)).status_code == 404


def _part(broadcast: dict[str, Any]) -> tuple[list[str], int, int, int, int, int]:
    """What a reader sees of a broadcast's reach: its scope's ids and its progress."""
    progress = broadcast["progress"]
    return (
        broadcast["scope"]["ids"],
        progress["recipients"],
        progress["enqueued"],
        progress["skipped_no_phone"],
        progress["skipped_opted_out"],
        sum(progress["states"].values()),
    )


async def test_a_town_broadcast_over_two_committees_shows_each_committee_only_its_part(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """The town office sends to compounds (or residents) of two committees at once: each
    committee's staff read the broadcast with only their own compound (or residents) in its
    scope and only their residents in its progress, as its messages count them (they read the
    other committee's ids and the whole town's counts); the town office reads it whole."""
    mine = await make_compound(client, town.id, town.operator, code="M1")
    other = await make_compound(client, town.id, town.operator, code="M2")
    wang = await resident(client, mine, town.operator, name="王秀英")
    await resident(client, mine, town.operator, name="刘洋", phone=None)
    await resident(client, mine, town.operator, name="李娜", opted_out=True)
    zhang = await resident(client, other, town.operator, name="张伟")
    await notify_knows(platform, 4)
    sent = {}
    for kind, ids in (("compounds", [mine.id, other.id]), ("residents", [wang["id"], zhang["id"]])):
        body = broadcast_body(town, {"kind": kind, "ids": ids}, priority="normal")
        created = await client.post("/v1/broadcasts", json=body, headers=town.operator)
        assert created.status_code == 201, created.text
        sent[kind] = created.json()["id"]
    # A town-wide one awaiting approval has skipped nobody yet, in the whole or a part.
    body = broadcast_body(town, {"kind": "town"}, priority="normal")
    waiting = await client.post("/v1/broadcasts", json=body, headers=town.operator)
    assert _part(waiting.json()) == ([], 4, 0, 0, 0, 0), waiting.text
    compounds = f"/v1/broadcasts/{sent['compounds']}"
    whole = (await client.get(compounds, headers=town.operator)).json()
    assert _part(whole) == ([mine.id, other.id], 4, 2, 1, 1, 2)

    for compound, named, part in (
        (mine, wang, ([mine.id], 3, 1, 1, 1, 1)),
        (other, zhang, ([other.id], 1, 1, 0, 0, 1)),
    ):
        staff = await committee_staff(client, town, compound, f"staff-{compound.code}")
        assert _part((await client.get(compounds, headers=staff)).json()) == part
        listed = (await client.get("/v1/broadcasts", headers=staff)).json()["items"]
        shown = {b["id"]: _part(b) for b in listed}
        assert shown == {
            sent["compounds"]: part,
            sent["residents"]: ([named["id"]], 1, 1, 0, 0, 1),
            waiting.json()["id"]: ([], part[1], 0, 0, 0, 0),
        }


async def test_opt_outs_skip_optional_broadcasts_never_urgent_ones_and_phones_are_checked(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="M1")
    await resident(client, compound, town.operator, name="王秀英")
    declined = await resident(client, compound, town.operator, name="李娜", opted_out=True)
    landline = await resident(client, compound, town.operator, name="张伟", phone="021-62345678")
    await resident(client, compound, town.operator, name="刘洋", phone=None)
    await notify_knows(platform, 4)
    scope = {"kind": "compounds", "ids": [compound.id]}

    body = broadcast_body(town, scope, priority="normal")
    preview = await client.post("/v1/broadcasts/preview", json=body, headers=town.operator)
    assert preview.status_code == 200, preview.text
    assert (
        preview.json()["recipients"],
        preview.json()["skipped_opted_out"],
        preview.json()["skipped_no_phone"],
    ) == (1, 1, 2)
    assert preview.json()["segments"] >= 1
    optional = await client.post("/v1/broadcasts", json=body, headers=town.operator)
    assert optional.status_code == 201, optional.text
    progress = optional.json()["progress"]
    assert (progress["enqueued"], progress["skipped_opted_out"], progress["skipped_no_phone"]) == (
        1,
        1,
        2,
    )

    urgent = broadcast_body(
        town,
        scope,
        priority="urgent",
        template_key="sealed",
        variables={"area": "Compound M1", "time": "2022-04-02T01:30:00+08:00"},
    )
    created = await client.post("/v1/broadcasts", json=urgent, headers=town.operator)
    assert created.status_code == 201, created.text
    progress = created.json()["progress"]
    assert (progress["enqueued"], progress["skipped_opted_out"], progress["skipped_no_phone"]) == (
        2,
        0,
        2,
    )
    sent = await messages(platform, broadcast_id=uuid.UUID(created.json()["id"]))
    assert uuid.UUID(declined["id"]) in {m.recipient_id for m in sent}
    assert {m.priority for m in sent} == {"urgent"}

    # Named one by one, a resident whose phone cannot receive SMS is refused, not skipped.
    named = broadcast_body(town, {"kind": "residents", "ids": [declined["id"], landline["id"]]})
    refused = await client.post("/v1/broadcasts", json=named, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "scope.ids.1"


async def test_a_cancelled_broadcast_stops_what_was_not_handed_over(
    client: httpx.AsyncClient, town: Town, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="M1")
    running = asyncio.create_task(platform.run_workers())
    try:
        for n in range(5):
            await resident(client, compound, town.operator, name=f"居民{n}")
        await notify_knows(platform, 5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    # A scope too large for the request: the enqueue job takes it in batches.
    monkeypatch.setattr(broadcasts, "INLINE_LIMIT", 2)
    monkeypatch.setattr(broadcasts, "BATCH", 2)
    scope = {"kind": "compounds", "ids": [compound.id]}
    created = await client.post(
        "/v1/broadcasts", json=broadcast_body(town, scope), headers=town.operator
    )
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["progress"]["enqueued"]) == ("enqueuing", 0)
    runtime = platform.runtime("notify")
    [job] = [j for j in runtime.spec.periodic if j.name == "broadcast-enqueue"]
    await runtime.tick(job)
    url = f"/v1/broadcasts/{created.json()['id']}"
    shown = (await client.get(url, headers=town.operator)).json()
    assert (shown["status"], shown["progress"]["enqueued"]) == ("enqueuing", 2)
    assert shown["progress"]["states"]["queued"] == 2

    cancelled = await client.post(f"{url}/cancel", headers=town.operator)
    assert cancelled.status_code == 200, cancelled.text
    await runtime.tick(job)
    shown = (await client.get(url, headers=town.operator)).json()
    assert shown["status"] == "cancelled"
    assert (shown["progress"]["states"]["queued"], shown["progress"]["states"]["cancelled"]) == (
        0,
        2,
    )
    assert len(await messages(platform)) == 2
    again = await client.post(f"{url}/cancel", headers=town.operator)
    assert again.status_code == 409


async def test_a_broadcast_superseded_mid_flight_stops_and_its_successor_goes(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="M1")
    await resident(client, compound, town.operator, name="王秀英")
    await notify_knows(platform, 1)
    scope = {"kind": "compounds", "ids": [compound.id]}
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    first = await client.post(
        "/v1/broadcasts", json=broadcast_body(town, scope, send_at=later), headers=town.operator
    )
    assert first.status_code == 201, first.text
    fixed = {**round_variables(), "round": "Night round (moved to 06:00)"}
    body = broadcast_body(town, scope, variables=fixed, supersedes_id=first.json()["id"])
    second = await client.post("/v1/broadcasts", json=body, headers=town.operator)
    assert second.status_code == 201, second.text
    old = (await client.get(f"/v1/broadcasts/{first.json()['id']}", headers=town.operator)).json()
    assert (old["status"], old["progress"]["states"]["cancelled"]) == ("superseded", 1)
    # The successor goes now (its send time is now), the old one was to wait an hour.
    [successor] = await messages(platform, broadcast_id=uuid.UUID(second.json()["id"]))
    assert "moved to 06:00" in successor.text

    # A broadcast superseded (or cancelled) already cannot be superseded again: a 409 naming
    # supersedes_id, and no third broadcast.
    third = await client.post("/v1/broadcasts", json=body, headers=town.operator)
    assert third.status_code == 409, third.text
    assert [e["field"] for e in third.json()["errors"]] == ["supersedes_id"], third.text
    listed = await client.get("/v1/broadcasts", headers=town.operator)
    assert len(listed.json()["items"]) == 2


@pytest.fixture
def no_quiet_hours(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Messages go out whatever the hour the suite runs at: a normal message waits for
    seven in the morning during the town's quiet hours (22:00-07:00, Beijing time: 14:00-23:00
    UTC). The quiet hours have tests of their own, on a fixed clock."""
    monkeypatch.setenv("CORDON_NOTIFY_QUIET_HOURS", "")
    get_notify_settings.cache_clear()
    yield
    get_notify_settings.cache_clear()


async def test_the_audit_shows_what_was_sent_to_whom_with_phones_masked(
    no_quiet_hours: None, client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="M1")
    person = await resident(client, compound, town.operator, name="Anna", language="en")
    await notify_knows(platform, 1)
    scope = {"kind": "compounds", "ids": [compound.id]}
    created = await client.post(
        "/v1/broadcasts", json=broadcast_body(town, scope), headers=town.operator
    )
    assert created.status_code == 201, created.text

    listed = await client.get(
        f"/v1/messages?broadcast_id={created.json()['id']}", headers=town.operator
    )
    assert listed.status_code == 200, listed.text
    [sent] = listed.json()["items"]
    assert sent["phone"] == "+86138****5678"
    assert sent["recipient_id"] == person["id"]
    assert (sent["template_key"], sent["template_version"], sent["language"]) == (
        "round_scheduled",
        1,
        "en",
    )
    assert sent["text"].startswith("Screening round Night round: 2 Apr 13:00")
    assert sent["caused_by"] == "operator"

    async def handed_over() -> bool:
        shown = await client.get(f"/v1/messages/{sent['id']}", headers=town.operator)
        return bool(shown.json()["state"] in ("sent", "delivered") and shown.json()["gateway"])

    await eventually(handed_over, what="the message handed to a gateway")
    revealed = await client.get(f"/v1/messages/{sent['id']}?reveal=true", headers=town.operator)
    assert revealed.json()["phone"] == "+8613812345678"
    volunteer = headers_for(
        platform,
        Role.volunteer,
        Scope.of(ScopeKind.buildings, towns=[town.id], buildings=[uuid.UUID(compound.building_id)]),
        "volunteer-1",
    )
    # A resident's message is none of a volunteer's: not there for them, revealed or not.
    for asked in ("", "?reveal=true"):
        shown = await client.get(f"/v1/messages/{sent['id']}{asked}", headers=volunteer)
        assert shown.status_code == 404


async def test_a_tag_or_a_zone_level_in_listed_compounds_reaches_only_them(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="M1")
    elder = await resident(client, compound, town.operator, name="王奶奶", tags=["elderly"])
    sealed = await resident(client, compound, town.operator, name="李娜", unit=1)
    await resident(client, compound, town.operator, name="张伟")
    zone = {"building_id": compound.building_id, "unit_id": compound.unit_ids[1]}
    await client.post(
        "/v1/zones", json={**zone, "level": "sealed", "reason": "case"}, headers=town.operator
    )
    await notify_knows(platform, 3)

    async def reached(scope: dict[str, Any]) -> set[str]:
        body = broadcast_body(
            town,
            scope,
            priority="urgent",
            template_key="sealed",
            variables={"area": "M1", "time": "2022-04-02T01:30:00+08:00"},
        )
        created = await client.post("/v1/broadcasts", json=body, headers=town.operator)
        assert created.status_code == 201, created.text
        sent = await messages(platform, broadcast_id=uuid.UUID(created.json()["id"]))
        return {str(m.recipient_id) for m in sent}

    assert await reached({"kind": "tag", "tag": "elderly", "ids": [compound.id]}) == {elder["id"]}

    async def zone_arrived() -> bool:
        preview = await client.post(
            "/v1/broadcasts/preview",
            json=broadcast_body(
                town, {"kind": "zone_level", "zone_level": "sealed", "ids": [compound.id]}
            ),
            headers=town.operator,
        )
        return bool(preview.json()["recipients"])

    await eventually(zone_arrived, what="the seal in the notify directory")
    level = {"kind": "zone_level", "zone_level": "sealed", "ids": [compound.id]}
    assert await reached(level) == {sealed["id"]}


async def test_a_broadcast_whose_scope_selects_nobody_is_refused_naming_what_selected_nobody(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """A broadcast to "all the elderly living alone in M1" when none live there: the
    operator is told (422 naming the field that selected nobody), not answered 201 with 0
    recipients; nothing is recorded, nothing sent. A preview still says 0: it is how to
    look."""
    compound = await make_compound(client, town.id, town.operator, code="M1")
    await resident(client, compound, town.operator, name="王秀英", tags=["elderly"])
    await notify_knows(platform, 1)
    cases = [
        ({"kind": "tag", "tag": "living_alone", "ids": [compound.id]}, "scope.tag"),
        ({"kind": "tag", "tag": "living_alone"}, "scope.tag"),
        ({"kind": "zone_level", "zone_level": "sealed", "ids": [compound.id]}, "scope.zone_level"),
        ({"kind": "units", "ids": [compound.unit_ids[1]]}, "scope.ids"),
    ]
    for scope, field in cases:
        body = broadcast_body(town, scope)
        refused = await client.post("/v1/broadcasts", json=body, headers=town.operator)
        assert refused.status_code == 422, (scope, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == [field], refused.text
        assert "no resident" in refused.json()["detail"], refused.text
        preview = await client.post("/v1/broadcasts/preview", json=body, headers=town.operator)
        assert (preview.status_code, preview.json()["recipients"]) == (200, 0), preview.text
    listed = await client.get("/v1/broadcasts", headers=town.operator)
    assert listed.json()["items"] == []
    assert await messages(platform) == []


async def test_a_value_no_sms_can_carry_or_no_clock_can_show_is_refused_naming_it(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """A control character in a text value (NUL: PostgreSQL refuses it in a text column) and
    a time at the end of the calendar (no clock east of UTC can show 9999-12-31 23:59 UTC)
    are the caller's 422 naming the variable, on the broadcast, its preview and the
    template's preview, not a 500 or a message that cannot be stored or read."""
    compound = await make_compound(client, town.id, town.operator, code="M1")
    await resident(client, compound, town.operator, name="王秀英")
    await notify_knows(platform, 1)
    scope = {"kind": "compounds", "ids": [compound.id]}
    cases = [
        ({**round_variables(), "round": "Night\x00round"}, "variables.round"),
        ({**round_variables(), "round": "Night\x07round"}, "variables.round"),
        ({**round_variables(), "start": "9999-12-31T23:59:59Z"}, "variables.start"),
        ({**round_variables(), "end": "0001-01-01T05:00:00+08:00"}, "variables.end"),
    ]
    for variables, field in cases:
        body = broadcast_body(town, scope, variables=variables)
        for path in ("/v1/broadcasts", "/v1/broadcasts/preview"):
            response = await client.post(path, json=body, headers=town.operator)
            assert response.status_code == 422, (path, response.text)
            assert [e["field"] for e in response.json()["errors"]] == [field], response.text
        preview = await client.post(
            "/v1/templates/round_scheduled/preview",
            json={"town_id": str(town.id), "variables": variables},
            headers=town.operator,
        )
        assert preview.status_code == 422, preview.text
        assert [e["field"] for e in preview.json()["errors"]] == [field], preview.text
    listed = await client.get("/v1/broadcasts", headers=town.operator)
    assert listed.json()["items"] == []
    assert await messages(platform) == []


async def test_a_template_text_that_is_blank_is_refused_naming_its_locale(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """An empty or blank text would send residents the signature alone (【某某街道】):
    refused, on a new template and on a new version, naming the text's locale."""
    for locale, text in (("zh-CN", ""), ("zh-CN", "  \n "), ("en", " ")):
        texts = {"zh-CN": "请居家。", locale: text}
        new = {"town_id": str(town.id), "key": "stay_home", "variables": {}, "texts": texts}
        refused = await client.post("/v1/templates", json=new, headers=town.operator)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [f"texts.{locale}"]
        edit = {"town_id": str(town.id), "variables": {}, "texts": texts}
        refused = await client.post(
            "/v1/templates/sealed/versions", json=edit, headers=town.operator
        )
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [f"texts.{locale}"]
    listed = await client.get(f"/v1/templates?town_id={town.id}", headers=town.operator)
    by_key = {t["key"]: t for t in listed.json()}
    assert "stay_home" not in by_key and by_key["sealed"]["version"] == 1


async def test_a_text_or_value_longer_than_one_sms_can_carry_is_refused_naming_it(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """A notice pasted twice by mistake would cost dozens of segments per resident: a text
    over 500 characters (what a gateway takes for one message) or a value over 200 is
    refused, naming it."""
    texts = {"zh-CN": "请居家。" * 126}
    new = {"town_id": str(town.id), "key": "stay_home", "variables": {}, "texts": texts}
    refused = await client.post("/v1/templates", json=new, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["texts.zh-CN"]
    at = "2022-04-01T17:30:00Z"
    preview = {"town_id": str(town.id), "variables": {"area": "楼" * 201, "time": at}}
    refused = await client.post("/v1/templates/sealed/preview", json=preview, headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["variables.area"]
    shown = await client.post(
        "/v1/templates/sealed/preview",
        json={**preview, "variables": {"area": "楼" * 200, "time": at}},
        headers=town.operator,
    )
    assert shown.status_code == 200, shown.text


async def test_the_audit_refuses_a_state_it_does_not_know_naming_it(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """`state=delivred` (a typo) answered an empty page, read as "nothing delivered": a 422
    naming `query.state`, as the counts answer; each known state still filters."""
    refused = await client.get("/v1/messages?state=delivred", headers=town.operator)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["query.state"], refused.text
    for state in ("queued", "delivered", "unknown"):
        listed = await client.get(f"/v1/messages?state={state}", headers=town.operator)
        assert listed.status_code == 200, listed.text
