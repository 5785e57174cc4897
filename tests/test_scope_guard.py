"""Unscoped queries on placed data cannot be written by accident, ORM or Core, and a scoped
session filters Core statements as it filters ORM queries."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, delete, exists, func, insert, literal, select, update

from cordon.platform import Platform
from services.registry.models import Household, Resident, ResidentMove
from shared.auth import Principal, Role, Scope, ScopeKind, UnscopedQueryError
from shared.db import table_of
from tests.conftest import Town
from tests.support import make_compound, make_resident

residents = table_of(Resident)
households = table_of(Household)


def _unscoped_statements() -> list[Any]:
    moves = table_of(ResidentMove)
    return [
        select(Resident),
        select(residents),
        select(residents.c.id).where(residents.c.name == "x"),
        select(func.count()).select_from(Resident),
        select(func.count()).select_from(residents),
        select(households.c.id).where(exists().where(residents.c.household_id == households.c.id)),
        update(residents).values(name="x"),
        delete(residents),
        insert(moves).from_select(
            ["id", "resident_id", "to_household_id", "town_id", "moved_by", "moved_at", "reason"],
            select(
                residents.c.id,
                residents.c.id,
                residents.c.household_id,
                residents.c.town_id,
                literal("x"),
                residents.c.updated_at,
                literal(""),
            ),
        ),
    ]


def _staff_of(town: Town, compound: Any) -> Principal:
    """A committee's staff member managing this one compound."""
    scope = Scope.of(
        ScopeKind.committees,
        towns=[town.id],
        committees=[uuid.UUID(compound.committee_id)],
        compounds=[uuid.UUID(compound.id)],
    )
    return Principal(id="staff", username="staff", role=Role.committee_staff, scope=scope)


@pytest.mark.parametrize("statement", range(len(_unscoped_statements())))
async def test_a_session_without_a_scope_refuses_placed_data(
    platform: Platform, statement: int
) -> None:
    runtime = platform.runtime("registry")
    async with runtime.database.session() as session:
        with pytest.raises(UnscopedQueryError):
            await session.execute(_unscoped_statements()[statement])


async def test_core_statements_see_and_change_only_the_callers_places(
    platform: Platform, client: httpx.AsyncClient, town: Town
) -> None:
    mine = await make_compound(client, town.id, town.operator, code="SA")
    theirs = await make_compound(client, town.id, town.operator, code="SB")
    own = await make_resident(client, mine, town.operator, name="甲")
    other = await make_resident(client, theirs, town.operator, name="乙")
    staff = _staff_of(town, mine)
    runtime = platform.runtime("registry")
    async with runtime.uow(staff) as uow:
        session = uow.session
        names = await session.scalars(select(residents.c.name).order_by(residents.c.name))
        assert list(names) == ["甲"]
        count = select(func.count()).select_from(residents)
        assert await session.scalar(count) == 1
        with_household = select(households.c.id).where(
            exists().where(residents.c.household_id == households.c.id)
        )
        assert list(await session.scalars(with_household)) == [uuid.UUID(own["household_id"])]
        changed = await session.execute(update(residents).values(name="改"))
        assert changed.rowcount == 1  # type: ignore[attr-defined]
        # executemany: one UPDATE per parameter set, each scoped.
        renamed = update(residents).where(residents.c.id == bindparam("b_id"))
        await session.execute(
            renamed.values(name=bindparam("b_name")),
            [
                {"b_id": uuid.UUID(own["id"]), "b_name": "甲二"},
                {"b_id": uuid.UUID(other["id"]), "b_name": "乙二"},
            ],
        )
        assert list(await session.scalars(select(residents.c.name))) == ["甲二"]
        deleted = await session.execute(
            delete(residents).where(residents.c.id == uuid.UUID(other["id"]))
        )
        assert deleted.rowcount == 0  # type: ignore[attr-defined]
        await uow.rollback()
    async with runtime.uow(Principal.system()) as uow:
        rows = await uow.session.execute(select(residents.c.id, residents.c.name))
        assert {str(i): n for i, n in rows} == {own["id"]: "甲", other["id"]: "乙"}


async def test_joins_aliases_and_subqueries_are_scoped_in_every_from(
    platform: Platform, client: httpx.AsyncClient, town: Town
) -> None:
    mine = await make_compound(client, town.id, town.operator, code="SC")
    theirs = await make_compound(client, town.id, town.operator, code="SD")
    await make_resident(client, mine, town.operator, name="甲")
    await make_resident(client, theirs, town.operator, name="乙")
    staff = _staff_of(town, mine)
    other = residents.alias("other")
    joined = select(residents.c.name).join_from(
        residents, households, households.c.id == residents.c.household_id
    )
    inner = select(residents.c.id).subquery()
    async with platform.runtime("registry").uow(staff) as uow:
        session = uow.session
        # Each built anew, as an endpoint builds its statements per request, and twice (the
        # second time from the scoping's memory).
        for _ in range(2):
            assert list(await session.scalars(joined)) == ["甲"]
            assert list(await session.scalars(select(other.c.name))) == ["甲"]
            pairs = (
                select(func.count())
                .select_from(residents)
                .join(other, other.c.town_id == residents.c.town_id)
            )
            assert await session.scalar(pairs) == 1
            assert await session.scalar(select(func.count()).select_from(inner)) == 1
            named = select(residents.c.name).where(
                residents.c.id.in_(select(residents.c.id).where(residents.c.name == "乙"))
            )
            assert list(await session.scalars(named)) == []
