"""The shared directory holds what logistics and notify will need of the registry: households,
residents with their tags and phones, staff and volunteers with their phones, and who is
assigned where; kept by events and rebuilt by a re-sync, on both backends."""

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from cordon.platform import Platform
from services.testing.models import directory
from shared.auth import Principal
from tests.conftest import Town
from tests.support import eventually, make_compound, make_resident, post


async def held(platform: Platform) -> dict[str, Any]:
    """What the testing service's directory holds, by kind."""
    models = directory.models
    runtime = platform.runtime("testing")
    async with runtime.uow(Principal.system()) as uow:

        async def rows(model: type[Any], *columns: str) -> set[tuple[Any, ...]]:
            table = models.table(model)
            result = await uow.session.execute(select(*(table.c[c] for c in columns)))
            return {tuple(row) for row in result}

        return {
            "households": await rows(models.Household, "id", "code"),
            "residents": await rows(models.Resident, "id", "household_id", "phone"),
            "people": await rows(models.Person, "id", "kind", "name", "phone"),
            "assignments": await rows(models.Assignment, "id", "person_id", "ended_at"),
        }


async def test_households_people_and_assignments_reach_the_directory_and_a_resync(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    compound = await make_compound(client, town.id, town.operator, code="P1")
    resident = await make_resident(client, compound, town.operator, household="301")
    staff = await post(
        client,
        "/v1/staff",
        {
            "compound_id": compound.id,
            "name": "李主任",
            "phone": "13912345678",
            "title": "secretary",
        },
        town.operator,
    )
    volunteer = await post(
        client,
        "/v1/volunteers",
        {"compound_id": compound.id, "name": "小张", "phone": "13712345678", "kind": "service"},
        town.operator,
    )
    kept = await post(
        client,
        "/v1/assignments",
        {"person_kind": "staff", "person_id": staff["id"], "building_id": compound.building_id},
        town.operator,
    )
    ended = await post(
        client,
        "/v1/assignments",
        {"person_kind": "volunteer", "person_id": volunteer["id"], "compound_id": compound.id},
        town.operator,
    )
    gone = await client.delete(f"/v1/assignments/{ended['id']}", headers=town.operator)
    assert gone.status_code in (200, 204), gone.text

    household = uuid.UUID(resident["household_id"])
    expected_people = {
        (uuid.UUID(staff["id"]), "staff", "李主任", "+8613912345678"),
        (uuid.UUID(volunteer["id"]), "volunteer", "小张", "+8613712345678"),
    }

    async def arrived() -> bool:
        found = await held(platform)
        return (
            found["people"] == expected_people
            and len(found["assignments"]) == 2
            and any(e is not None for _, _, e in found["assignments"])
        )

    await eventually(arrived, what="people and assignments in the directory")
    found = await held(platform)
    assert found["households"] == {(household, "301")}
    assert found["residents"] == {(uuid.UUID(resident["id"]), household, "+8613812345678")}
    [(_, _, ended_at)] = [a for a in found["assignments"] if a[0] == uuid.UUID(ended["id"])]
    assert ended_at is not None

    response = await client.post("/v1/registry/resync", headers=town.operator)
    assert response.status_code == 202, response.text

    async def rebuilt() -> bool:
        # The ended assignment is not in the registry any more: the re-sync drops it.
        return {a[0] for a in (await held(platform))["assignments"]} == {uuid.UUID(kept["id"])}

    await eventually(rebuilt, what="the re-sync applied")
    again = await held(platform)
    assert again["people"] == expected_people
    assert again["households"] == found["households"]
    assert again["residents"] == found["residents"]


async def test_how_to_reach_people_reaches_the_directory(
    client: httpx.AsyncClient, town: Town, platform: Platform, workers: None
) -> None:
    """Notify writes in a resident's language and spares those who opted out; logistics
    suggests volunteers by skill and availability: all of it from the directory."""
    compound = await make_compound(client, town.id, town.operator, code="P2")
    resident = await make_resident(client, compound, town.operator, household="302")
    assert (resident["language"], resident["opted_out"]) == ("zh-CN", False)
    changed = await client.patch(
        f"/v1/residents/{resident['id']}",
        json={"language": "en", "opted_out": True},
        headers=town.operator,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["language"], changed.json()["opted_out"]) == ("en", True)
    volunteer = await post(
        client,
        "/v1/volunteers",
        {
            "compound_id": compound.id,
            "name": "小李",
            "phone": "13712345679",
            "kind": "service",
            "skills": ["driving", "medicine_run"],
            "availability": "evenings",
        },
        town.operator,
    )
    models = directory.models
    runtime = platform.runtime("testing")

    async def reached() -> bool:
        async with runtime.uow(Principal.system()) as uow:
            residents = models.table(models.Resident)
            people = models.table(models.Person)
            spoken = (
                await uow.session.execute(
                    select(residents.c.language, residents.c.opted_out).where(
                        residents.c.id == uuid.UUID(resident["id"])
                    )
                )
            ).all()
            skilled = (
                await uow.session.execute(
                    select(people.c.skills, people.c.availability).where(
                        people.c.id == uuid.UUID(volunteer["id"])
                    )
                )
            ).all()
        return spoken == [("en", True)] and skilled == [(["driving", "medicine_run"], "evenings")]

    await eventually(reached, what="language, opt-out and skills in the directory")
