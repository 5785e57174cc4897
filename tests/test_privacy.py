"""Personal data through one presenter: a masked resident cannot be rebuilt from what is shown,
fragment search only for roles that may reveal the field, and health data (tasks as much as
results) masks names alike for every role."""

import uuid
from typing import Any, get_args

import httpx
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import select

from cordon.platform import Platform
from cordon.services import ALL
from services.registry.models import kernel as registry_kernel
from services.testing.models import kernel as testing_kernel
from shared.auth import Principal, Role, Scope, ScopeKind
from shared.privacy import PersonalRecord, personal_fields, presenter
from tests.conftest import Town
from tests.support import Compound, headers_for, make_compound, make_resident
from tests.test_antigen import DAY, Building, building, report  # noqa: F401  (fixture)
from tests.test_results import (  # noqa: F401  (fixture)
    RETESTED,
    Lab,
    lab,
    results_csv,
    upload,
)
from tests.test_rounds import in_directory, tube

BIRTH_DIGITS = slice(6, 14)  # YYYYMMDD inside an 18-character ID card number


def rebuilt(masked: str, birth_date: str | None) -> str | None:
    """The whole ID number if what a masked output shows is enough to write it down."""
    chars = list(masked)
    if birth_date is not None and len(chars) == 18:
        chars[BIRTH_DIGITS] = birth_date.replace("-", "")
    number = "".join(chars)
    return None if "*" in number else number


def scoped(platform: Platform, town: Town, compound: Compound, role: Role, name: str) -> Any:
    place = {"towns": [town.id], "compounds": [uuid.UUID(compound.id)]}
    if role in (Role.building_leader, Role.volunteer):
        buildings = [uuid.UUID(compound.building_id)]
        return headers_for(
            platform, role, Scope.of(ScopeKind.buildings, buildings=buildings, **place), name
        )
    return headers_for(platform, role, Scope.of(ScopeKind.compounds, **place), name)


async def test_a_masked_resident_cannot_be_rebuilt_from_its_id_number_and_birth_date(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    created = await make_resident(client, compound, town.operator, born="1949-12-31")
    number = created["document_number"]
    path = f"/v1/residents/{created['id']}"
    leader = scoped(platform, town, compound, Role.building_leader, "leader-p1")
    for headers in (town.operator, leader):
        for shown in (
            (await client.get(path, headers=headers)).json(),
            (await client.get("/v1/residents", headers=headers)).json()["items"][0],
        ):
            assert shown["document_number"] != number
            assert rebuilt(shown["document_number"], shown["birth_date"]) is None
            assert shown["birth_year"] == 1949
    revealed = (await client.get(f"{path}?reveal=true", headers=town.operator)).json()
    assert (revealed["document_number"], revealed["birth_date"]) == (number, "1949-12-31")


async def test_fragment_search_on_a_field_only_for_roles_that_may_reveal_it(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P2")
    created = await make_resident(client, compound, town.operator, phone="13812345678")
    volunteer = scoped(platform, town, compound, Role.volunteer, "volunteer-p2")
    leader = scoped(platform, town, compound, Role.building_leader, "leader-p2")

    # A volunteer sees the phone masked, so may not ask for it digit by digit either.
    oracle = await client.get("/v1/residents", params={"phone": "1381234"}, headers=volunteer)
    assert oracle.status_code == 403, oracle.text
    assert [e["field"] for e in oracle.json()["errors"]] == ["phone"]
    listed = await client.get("/v1/residents", headers=volunteer)
    assert [r["id"] for r in listed.json()["items"]] == [created["id"]]

    # A building leader may reveal phones (and search them), not ID numbers.
    found = await client.get("/v1/residents", params={"phone": "1381234"}, headers=leader)
    assert [r["id"] for r in found.json()["items"]] == [created["id"]]
    fragment = created["document_number"][6:10]
    refused = await client.get("/v1/residents", params={"document": fragment}, headers=leader)
    assert refused.status_code == 403
    assert [e["field"] for e in refused.json()["errors"]] == ["document"]
    by_operator = await client.get(
        "/v1/residents", params={"document": fragment}, headers=town.operator
    )
    assert [r["id"] for r in by_operator.json()["items"]] == [created["id"]]


async def access_log(platform: Platform) -> list[Any]:
    async with platform.runtime("testing").uow(Principal.system()) as uow:
        table = testing_kernel.access_log
        return list((await uow.session.execute(select(table))).all())


async def test_tasks_mask_the_names_of_antigen_positives_as_reports_and_results_do(
    client: httpx.AsyncClient,
    town: Town,
    building: Building,  # noqa: F811
    platform: Platform,
) -> None:
    first, *_ = building.people
    positive = await client.post(
        "/v1/antigen-reports", json=report(first, "positive", 37.9, day=DAY), headers=town.operator
    )
    assert positive.json()["task_id"] is not None
    reports = f"/v1/antigen-reports?day={DAY}&building_id={building.id}"
    tasks = "/v1/tasks?kind=pcr_after_antigen"
    volunteer = scoped(platform, town, building.compound, Role.volunteer, "volunteer-p3")
    leader = scoped(platform, town, building.compound, Role.building_leader, "leader-p3")

    for headers, name in ((volunteer, None), (leader, "孙*"), (town.operator, "孙*")):
        [seen_report] = (await client.get(reports, headers=headers)).json()["items"]
        [seen_task] = (await client.get(tasks, headers=headers)).json()["items"]
        assert seen_report["name"] == seen_task["name"] == name
    assert (await client.get(f"{tasks}&reveal=true", headers=leader)).status_code == 403
    assert await access_log(platform) == []

    [revealed] = (await client.get(f"{tasks}&reveal=true", headers=town.operator)).json()["items"]
    assert (revealed["name"], revealed["phone"]) == ("孙丽", "+8613812345678")
    [logged] = await access_log(platform)
    assert (logged.resource, logged.record_ids, logged.endpoint) == ("tasks", [first], "/v1/tasks")
    assert logged.fields == "name,phone"


def _models(annotation: Any, seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    """Every model an answer of this type can hold, nested ones included."""
    model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    if model and annotation not in seen:
        seen.add(annotation)
        for info in annotation.model_fields.values():
            _models(info.annotation, seen)
    for arg in get_args(annotation):
        _models(arg, seen)
    return seen


def _depends_on(dependant: Any, call: Any) -> bool:
    return dependant.call is call or any(_depends_on(d, call) for d in dependant.dependencies)


def test_every_answer_with_personal_data_is_marked_and_goes_through_thepresenter() -> None:
    """A new endpoint or schema cannot show a phone, an ID number or a birth date (or a name
    on health data) without marking it, nor return marked fields without the presenter."""
    routes = [r for spec in ALL for router in spec.routers for r in router.routes]
    unmarked, unpresented = [], []
    for route in routes:
        if not isinstance(route, APIRoute) or route.response_model is None:
            continue
        models = _models(route.response_model, set())
        for model in models:
            marked = personal_fields(model)
            health = issubclass(model, PersonalRecord) and model.health
            must = {"phone", "document_number", "birth_date"} | ({"name"} if health else set())
            unmarked += [
                f"{model.__name__}.{f}" for f in must & set(model.model_fields) - set(marked)
            ]
        if any(personal_fields(m) for m in models) and not _depends_on(route.dependant, presenter):
            unpresented.append(f"{route.methods} {route.path}")
    assert unmarked == [] and unpresented == []
    assert (
        len([r for r in routes if isinstance(r, APIRoute) and _depends_on(r.dependant, presenter)])
        >= 20
    )


async def test_an_export_is_one_logged_reveal_naming_every_resident_it_shows(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P4")
    shown = {
        (await make_resident(client, compound, town.operator, household=h))["id"] for h in "12"
    }
    leader = scoped(platform, town, compound, Role.building_leader, "leader-p4")
    refused = await client.get("/v1/exports/residents", headers=leader)
    assert refused.status_code == 403
    exported = await client.get("/v1/exports/residents", headers=town.operator)
    assert exported.status_code == 200
    async with platform.runtime("registry").uow(Principal.system()) as uow:
        table = registry_kernel.access_log
        rows = (
            await uow.session.execute(select(table).where(table.c.resource == "resident-export"))
        ).all()
    [logged] = rows
    assert set(logged.record_ids) == shown and logged.fields == "birth_date,id_number,phone"


async def test_the_door_to_door_list_masks_who_must_be_retested_as_tasks_do(
    client: httpx.AsyncClient,
    town: Town,
    lab: Lab,  # noqa: F811
    platform: Platform,
) -> None:
    applied = await upload(client, town.operator, results_csv([("P0001", "positive")]))
    assert applied.status_code == 201, applied.text
    path = f"/v1/rounds/{lab.round_id}/door-to-door"
    volunteer = scoped(platform, town, lab.compound, Role.volunteer, "volunteer-p5")
    leader = scoped(platform, town, lab.compound, Role.building_leader, "leader-p5")
    for headers, names in ((volunteer, {None}), (leader, {"王*"}), (town.operator, {"王*"})):
        [listed] = (await client.get(path, headers=headers)).json()
        assert {r["reasons"][0] for r in listed["residents"]} == {"retest"}
        assert {r["resident_id"] for r in listed["residents"]} == set(lab.a)
        assert {r["name"] for r in listed["residents"]} == names
    assert (await client.get(path, params={"reveal": "true"}, headers=leader)).status_code == 403
    [listed] = (await client.get(path, params={"reveal": "true"}, headers=town.operator)).json()
    assert {r["name"] for r in listed["residents"]} == {"王0", "王1", "王2"}


async def test_the_door_to_door_list_masks_a_sealed_resident_whose_pool_was_positive(
    client: httpx.AsyncClient,
    town: Town,
    lab: Lab,  # noqa: F811
    platform: Platform,
) -> None:
    """A sealed resident stays on the list once their retest is swabbed (no open task any
    more), and their status still tells their pool was positive: health data, masked as on
    ``/v1/results`` (a volunteer read the full name beside ``retest_sampled``)."""
    sealed = await client.post(
        "/v1/zones",
        json={
            "building_id": lab.compound.building_id,
            "unit_id": lab.compound.unit_ids[0],
            "level": "sealed",
            "reason": "positive neighbour",
        },
        headers=town.operator,
    )
    assert sealed.status_code in (200, 201), sealed.text
    await in_directory(platform, residents=7, zones=1)
    applied = await upload(client, town.operator, results_csv([("P0001", "positive")]))
    assert applied.status_code == 201, applied.text
    retested = lab.a[0]
    swabbed = await client.post(
        f"/v1/rounds/{lab.round_id}/tubes",
        json=tube("R0001", [retested], retest=True, collected_at=RETESTED),
        headers=town.operator,
    )
    assert swabbed.status_code == 201, swabbed.text
    path = f"/v1/rounds/{lab.round_id}/door-to-door"
    volunteer = scoped(platform, town, lab.compound, Role.volunteer, "volunteer-p6")
    leader = scoped(platform, town, lab.compound, Role.building_leader, "leader-p6")
    for headers, name in ((volunteer, None), (leader, "王*"), (town.operator, "王*")):
        [listed] = (await client.get(path, headers=headers)).json()
        [entry] = [r for r in listed["residents"] if r["resident_id"] == retested]
        assert (entry["reasons"], entry["status"]) == (["sealed"], "retest_sampled")
        assert entry["name"] == name
