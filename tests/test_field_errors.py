"""A rule across fields, broken, is a 422 whose `errors` name the field to correct (a form
shows the message beside it), never `body`."""

import uuid
from typing import Any

import httpx

from services.logistics.disinfection.schemas import DefaultsIn
from tests.conftest import Town

SOMEONE = str(uuid.uuid4())
MORNING = {"starts_at": "2022-04-02T05:00:00+08:00", "ends_at": "2022-04-02T11:00:00+08:00"}
DEFAULTS = DefaultsIn.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


def _round(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "Night round",
        "scope": {"kind": "compounds", "ids": [SOMEONE]},
        **MORNING,
        **changes,
    }
    return body


LATER = "2022-04-02T10:00:00+08:00"


def _broadcast(**changes: Any) -> dict[str, Any]:
    return {
        "scope": {"kind": "town"},
        "template_key": "round_scheduled",
        "valid_until": "2022-04-02T09:00:00+08:00",
        **changes,
    }


# (method, path with {town}, body with {town} filled in, the field named)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v1/rounds", _round(ends_at=MORNING["starts_at"]), "ends_at"),
    ("POST", "/v1/rounds", _round(ends_at="2022-04-12T11:00:00+08:00"), "ends_at"),
    (
        "POST",
        "/v1/rounds",
        _round(scope={"kind": "compounds", "ids": [SOMEONE], "zone_level": "sealed"}),
        "scope.zone_level",
    ),
    ("POST", "/v1/rounds", _round(scope={"kind": "zone_level"}), "scope.zone_level"),
    ("POST", "/v1/rounds", _round(scope={"kind": "buildings"}), "scope.ids"),
    (
        "POST",
        f"/v1/cases/{SOMEONE}/contacts",
        {"resident_id": SOMEONE, "name": "Courier Wang"},
        "resident_id",
    ),
    ("POST", f"/v1/cases/{SOMEONE}/contacts", {}, "resident_id"),
    (
        "POST",
        f"/v1/cases/{SOMEONE}/contacts",
        {"resident_id": SOMEONE, "phone": "13912345678"},
        "phone",
    ),
    ("POST", f"/v1/cases/{SOMEONE}/transfer", {"status": "scheduled"}, "destination"),
    (
        "POST",
        f"/v1/cases/{SOMEONE}/transfer",
        {"status": "scheduled", "destination": "Hall 3"},
        "scheduled_for",
    ),
    (
        "PUT",
        "/v1/disinfection-defaults/{town}",
        {**DEFAULTS, "first_slot_hour": 20, "last_slot_hour": 8},
        "last_slot_hour",
    ),
    (
        "POST",
        "/v1/disinfection-schedules",
        {"target": "lift", "compound_id": SOMEONE},
        "building_id",
    ),
    ("POST", "/v1/broadcasts", _broadcast(scope={"kind": "units"}), "scope.ids"),
    ("POST", "/v1/broadcasts", _broadcast(scope={"kind": "tag"}), "scope.tag"),
    ("POST", "/v1/broadcasts", _broadcast(scope={"kind": "town", "ids": [SOMEONE]}), "scope.ids"),
    ("POST", "/v1/broadcasts", _broadcast(send_at=LATER), "send_at"),
    ("POST", "/v1/broadcasts", _broadcast(priority="urgent", optional=True), "optional"),
    (
        "PUT",
        "/v1/request-settings/{town}",
        {"urgent_minutes": 300, "high_minutes": 240},
        "high_minutes",
    ),
    (
        "PUT",
        "/v1/request-settings/{town}",
        {"high_minutes": 2000, "normal_minutes": 1440},
        "normal_minutes",
    ),
]


async def test_a_broken_rule_across_fields_names_the_field_to_correct(
    client: httpx.AsyncClient, town: Town
) -> None:
    named = []
    for method, path, body, _ in CASES:
        if path in ("/v1/rounds", "/v1/broadcasts"):
            body = {**body, "town_id": str(town.id)}
        answer = await client.request(
            method, path.format(town=town.id), json=body, headers=town.operator
        )
        assert answer.status_code == 422, answer.text
        named.append(next(iter(answer.json()["errors"]), {}).get("field"))
    assert named == [field for *_, field in CASES]
