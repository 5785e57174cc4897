"""Coverage of a round: who was expected, sampled, resulted and found positive, counted per
compound, grid, building or unit in one GROUP BY over the round's members; who was missed,
by name; and who was missed in the last two closed rounds that covered them.

Every count is of members (people), each counted once per group; the caller's scope filters
the members, so committee staff count only their compounds' people. A member is sampled
once in a tube (``sampled_at``), resulted when their tube came back negative or positive
(a pool's positive puts them under retest, which counts as positive), and a retest tube at
the lab makes them sampled but not resulted again until it returns (still positive, as in a
positive pool, until the retest says otherwise)."""

import functools
import re
import uuid
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.types import Uuid

from services.testing.coverage import schemas
from services.testing.models import (
    DirectoryGridBuilding,
    DirectoryPlace,
    DirectoryResident,
    MemberStatus,
    Round,
    RoundMember,
    RoundStatus,
)
from services.testing.rounds.service import check_place, get_round
from shared.db import AnySelect
from shared.pagination import Page, keyset, next_cursor
from shared.uow import UnitOfWork

RESULTED = (
    MemberStatus.negative.value,
    MemberStatus.positive.value,
    MemberStatus.retest_required.value,
)
# In a positive pool stays positive while the retest is at the lab: a round with a positive
# pool never shows zero positives.
POSITIVE = (
    MemberStatus.positive.value,
    MemberStatus.retest_required.value,
    MemberStatus.retest_sampled.value,
)
# Groupings where every member falls in exactly one group, so the total is their sum.
PARTITIONS: dict[str, Any] = {
    "compound": RoundMember.compound_id,
    "building": RoundMember.building_id,
    # A house without units is a group of its own (its building), in its compound.
    "unit": func.coalesce(RoundMember.unit_id, RoundMember.building_id),
}
TALLIES = ("expected", "sampled", "resulted", "positive")


def _tallies() -> tuple[Any, ...]:
    return (
        func.count().label("expected"),
        func.count(RoundMember.sampled_at).label("sampled"),
        func.count(case((RoundMember.status.in_(RESULTED), 1))).label("resulted"),
        func.count(case((RoundMember.status.in_(POSITIVE), 1))).label("positive"),
    )


def _tally(row: Any) -> dict[str, int]:
    expected, sampled = int(row.expected or 0), int(row.sampled or 0)
    return {
        "expected": expected,
        "sampled": sampled,
        "resulted": int(row.resulted or 0),
        "positive": int(row.positive or 0),
        "missed": expected - sampled,
    }


def _groups(by: schemas.Grouping, where: list[ColumnElement[bool]]) -> Any:
    """One row per group with its tallies, and ``total`` true on a row of every member.

    By compound, building or unit each member is in one group, so the total is summed from
    the groups afterwards. By grid, members are counted once per building first and the
    buildings summed into their grids (far cheaper than joining every member to every grid
    of its building), and into the total row."""
    if by != "grid":
        key = PARTITIONS[by]
        return (
            select(key.label("place_id"), literal(False).label("total"), *_tallies())
            .where(*where)
            .group_by(key)
            .subquery()
        )
    buildings = (
        select(RoundMember.building_id.label("building_id"), *_tallies())
        .where(*where)
        .group_by(RoundMember.building_id)
        .cte("by_building")
    )
    sums = [func.sum(buildings.c[name]).label(name) for name in TALLIES]
    per_grid = (
        select(
            DirectoryGridBuilding.grid_id.label("place_id"), literal(False).label("total"), *sums
        )
        .join(buildings, buildings.c.building_id == DirectoryGridBuilding.building_id)
        .group_by(DirectoryGridBuilding.grid_id)
    )
    whole = select(literal(None, Uuid).label("place_id"), literal(True).label("total"), *sums)
    return union_all(per_grid, whole).subquery()


async def _members_where(
    uow: UnitOfWork,
    *,
    round_id: uuid.UUID,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
) -> list[ColumnElement[bool]]:
    """The round's members in the places asked for, each place checked against the scope."""
    await get_round(uow, round_id, field="round_id")
    await check_place(uow, compound_id, kind="compound", field="compound_id")
    await check_place(uow, building_id, kind="building", field="building_id")
    await check_place(uow, unit_id, kind="unit", field="unit_id")
    where = [RoundMember.round_id == round_id]
    for column, value in (
        (RoundMember.compound_id, compound_id),
        (RoundMember.building_id, building_id),
        (RoundMember.unit_id, unit_id),
    ):
        if value is not None:
            where.append(column == value)
    return where


@functools.lru_cache(maxsize=4096)
def _natural(text: str | None) -> tuple[Any, ...]:
    """Building 2 before building 10."""
    parts = re.split(r"(\d+)", text or "")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


async def coverage(
    uow: UnitOfWork,
    *,
    round_id: uuid.UUID,
    by: schemas.Grouping,
    compound_id: uuid.UUID | None = None,
    building_id: uuid.UUID | None = None,
) -> schemas.Coverage:
    where = await _members_where(
        uow, round_id=round_id, compound_id=compound_id, building_id=building_id
    )
    grouped = _groups(by, where)
    query = select(
        grouped,
        DirectoryPlace.code,
        DirectoryPlace.name,
        DirectoryPlace.compound_id.label("place_compound_id"),
        DirectoryPlace.building_id.label("place_building_id"),
        DirectoryPlace.parent_id,
        DirectoryPlace.kind.label("place_kind"),
    ).outerjoin(DirectoryPlace, DirectoryPlace.id == grouped.c.place_id)
    rows = (await uow.session.execute(query)).all()
    return _coverage_of(
        rows, round_id=round_id, by=by, compound_id=compound_id, building_id=building_id
    )


def _coverage_of(
    rows: Sequence[Any],
    *,
    round_id: uuid.UUID,
    by: schemas.Grouping,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
) -> schemas.Coverage:
    """The answer from rows of tallies per group with their place's code, name, compound,
    building and parent (and, by grid, a row of the total)."""
    groups = [
        schemas.CoverageGroup(
            place_id=row.place_id,
            kind=_kind(by, row),
            code=row.code,
            name=row.name,
            compound_id=row.place_compound_id,
            building_id=_building_of(by, row),
            parent_id=row.parent_id if by == "grid" else None,
            **_tally(row),
        )
        for row in rows
        if not row.total
    ]
    groups.sort(
        key=lambda g: (str(g.compound_id or ""), _natural(g.name if by == "unit" else g.code))
    )
    totals = [schemas.Tally(**_tally(row)) for row in rows if row.total]
    total = totals[0] if totals else _sum(rows)
    return schemas.Coverage(
        round_id=round_id,
        by=by,
        compound_id=compound_id,
        building_id=building_id,
        total=total,
        groups=groups,
    )


async def open_round_coverage(
    uow: UnitOfWork, *, compound_id: uuid.UUID
) -> schemas.OpenRoundCoverage:
    """The open round most recently opened that has members of this compound in the caller's
    scope, and its coverage there by building and by unit: one pass over those members,
    grouped by building and unit, summed both ways (each member is in one unit of one
    building, so both sums are exact)."""
    await check_place(uow, compound_id, kind="compound", field="compound_id")
    in_compound = RoundMember.compound_id == compound_id
    has_members = (
        select(RoundMember.round_id).where(RoundMember.round_id == Round.id, in_compound).exists()
    )
    latest = (
        select(Round)
        .where(Round.status == RoundStatus.open.value, has_members)
        .order_by(Round.opened_at.desc().nulls_last(), Round.id)
        .limit(1)
    )
    round_ = await uow.session.scalar(latest)
    if round_ is None:
        return schemas.OpenRoundCoverage(
            compound_id=compound_id, round=None, buildings=None, units=None
        )
    query = (
        select(RoundMember.building_id, RoundMember.unit_id, *_tallies())
        .where(RoundMember.round_id == round_.id, in_compound)
        .group_by(RoundMember.building_id, RoundMember.unit_id)
    )
    rows = (await uow.session.execute(query)).all()
    places = await _places(uow, {r.building_id for r in rows} | {r.unit_id for r in rows})

    def by(grouping: schemas.Grouping, key: str) -> schemas.Coverage:
        groups: dict[uuid.UUID | None, list[Any]] = {}
        for row in rows:
            # As the round's coverage groups them: a house without units by its building.
            groups.setdefault(getattr(row, key) or row.building_id, []).append(row)
        placed = [
            _placed_row(place_id, places.get(place_id), _totals(group))
            for place_id, group in groups.items()
        ]
        return _coverage_of(
            placed, round_id=round_.id, by=grouping, compound_id=compound_id, building_id=None
        )

    return schemas.OpenRoundCoverage(
        compound_id=compound_id,
        round=schemas.RoundBrief.model_validate(round_),
        buildings=by("building", "building_id"),
        units=by("unit", "unit_id"),
    )


async def _places(uow: UnitOfWork, ids: set[uuid.UUID | None]) -> dict[uuid.UUID | None, Any]:
    wanted = [place_id for place_id in ids if place_id is not None]
    if not wanted:
        return {}
    query = select(
        DirectoryPlace.id,
        DirectoryPlace.code,
        DirectoryPlace.name,
        DirectoryPlace.compound_id,
        DirectoryPlace.building_id,
        DirectoryPlace.parent_id,
        DirectoryPlace.kind,
    ).where(DirectoryPlace.id.in_(wanted))
    return {place.id: place for place in (await uow.session.execute(query)).all()}


def _placed_row(place_id: uuid.UUID | None, place: Any, tally: dict[str, int]) -> SimpleNamespace:
    """A group's tallies with its place, as ``coverage`` reads them joined to the places."""
    return SimpleNamespace(
        place_id=place_id,
        total=False,
        code=place.code if place else None,
        name=place.name if place else None,
        place_compound_id=place.compound_id if place else None,
        place_building_id=place.building_id if place else None,
        parent_id=place.parent_id if place else None,
        place_kind=place.kind if place else None,
        **tally,
    )


def _kind(by: schemas.Grouping, row: Any) -> schemas.Grouping:
    """By unit, a house without units is counted as its building."""
    return "building" if by == "unit" and row.place_kind == "building" else by


def _building_of(by: schemas.Grouping, row: Any) -> uuid.UUID | None:
    if _kind(by, row) == "building":
        return row.place_building_id or row.place_id
    return row.place_building_id if by == "unit" else None


def _totals(rows: Sequence[Any]) -> dict[str, int]:
    return {name: sum(int(getattr(row, name) or 0) for row in rows) for name in TALLIES}


def _sum(rows: Sequence[Any]) -> schemas.Tally:
    return schemas.Tally(**_tally(SimpleNamespace(**_totals(rows))))


def _residents(placed: Any, id_column: Any) -> AnySelect:
    """Residents as the missed lists show them, placed where ``placed`` (a round's members
    or the directory) says; join DirectoryResident when it is not the source. Their units'
    names are read after the page (``_page_of_residents``)."""
    return select(
        id_column.label("id"),
        placed.compound_id,
        placed.building_id,
        placed.unit_id,
        placed.household_id,
        placed.door_to_door,
        DirectoryResident.name,
        DirectoryResident.phone,
    )


def _missed_out(row: Any) -> schemas.MissedResident:
    return schemas.MissedResident(
        resident_id=row.id,
        name=row.name,
        compound_id=row.compound_id,
        building_id=row.building_id,
        unit_id=row.unit_id,
        unit=row.unit,
        household_id=row.household_id,
        phone=row.phone,
        door_to_door=row.door_to_door,
    )


async def _page_of_residents(
    uow: UnitOfWork,
    query: AnySelect,
    *,
    id_column: Any,
    cursor: str | None,
    limit: int,
) -> Page[schemas.MissedResident]:
    """One page of residents, in clear (the endpoint's presenter masks them), then the names
    of their units: joined to the places in one statement, the planner expected one row
    from the ranking and read every place of the town for each resident of the page."""
    rows = list(
        (await uow.session.execute(keyset(query, id_column, cursor=cursor, limit=limit))).all()
    )
    page, following = next_cursor(rows, limit)
    units = await _unit_names(uow, [row.unit_id for row in page if row.unit_id is not None])
    items = [
        _missed_out(SimpleNamespace(**row._asdict(), unit=units.get(row.unit_id))) for row in page
    ]
    return Page(items=items, next_cursor=following)


async def missed(
    uow: UnitOfWork,
    *,
    round_id: uuid.UUID,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    unit_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[schemas.MissedResident]:
    """The round's members not sampled yet, with what a building leader needs to find them."""
    where = await _members_where(
        uow, round_id=round_id, compound_id=compound_id, building_id=building_id, unit_id=unit_id
    )
    # The page of members first, then the names and units of those few: a join in one
    # statement let the planner hash the whole directory when its statistics lagged (a
    # directory just filled), hundreds of milliseconds for a page of 50.
    members = select(
        RoundMember.resident_id.label("id"),
        RoundMember.compound_id,
        RoundMember.building_id,
        RoundMember.unit_id,
        RoundMember.household_id,
        RoundMember.door_to_door,
    ).where(*where, RoundMember.sampled_at.is_(None))
    found = keyset(members, RoundMember.resident_id, cursor=cursor, limit=limit)
    page, following = next_cursor(list((await uow.session.execute(found)).all()), limit)
    people = await _names(uow, [row.id for row in page])
    units = await _unit_names(uow, [row.unit_id for row in page if row.unit_id is not None])
    items = [
        _missed_out(
            SimpleNamespace(
                **row._asdict(),
                name=people[row.id][0],
                phone=people[row.id][1],
                unit=units.get(row.unit_id),
            )
        )
        for row in page
        if row.id in people  # as the directory has them (a resident it no longer holds: not)
    ]
    return Page(items=items, next_cursor=following)


async def _names(uow: UnitOfWork, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, Any]]:
    if not ids:
        return {}
    query = select(DirectoryResident.id, DirectoryResident.name, DirectoryResident.phone).where(
        DirectoryResident.id.in_(ids)
    )
    return {row.id: (row.name, row.phone) for row in (await uow.session.execute(query)).all()}


async def _unit_names(uow: UnitOfWork, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    query = select(DirectoryPlace.id, DirectoryPlace.name).where(DirectoryPlace.id.in_(set(ids)))
    return {row.id: row.name for row in (await uow.session.execute(query)).all()}


async def missed_twice(
    uow: UnitOfWork,
    *,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[schemas.MissedResident]:
    """Residents who were members of the last two closed PCR rounds that covered them (in
    these places) and were sampled in neither. Antigen rounds are self-reported, not sampled,
    so they neither count nor break the run."""
    await check_place(uow, compound_id, kind="compound", field="compound_id")
    await check_place(uow, building_id, kind="building", field="building_id")
    latest_first = func.row_number().over(
        partition_by=RoundMember.resident_id,
        order_by=(Round.starts_at.desc(), Round.id.desc()),
    )

    def closed_pcr_in_places(member: Any, round_: Any) -> list[Any]:
        where = [round_.status == RoundStatus.closed.value, round_.kind == "pcr"]
        if compound_id is not None:
            where.append(member.compound_id == compound_id)
        if building_id is not None:
            where.append(member.building_id == building_id)
        return where

    # Only who was missed in at least two closed rounds can be missed in their last two:
    # ranking their memberships alone reads a few hundred rows, not every member of every
    # round (nor everyone missed once, a dozen times more).
    member, round_ = aliased(RoundMember), aliased(Round)
    unsampled = (
        select(member.resident_id)
        .join(round_, round_.id == member.round_id)
        .where(*closed_pcr_in_places(member, round_), member.sampled_at.is_(None))
        .group_by(member.resident_id)
        .having(func.count() >= 2)
    )
    ranked = (
        select(RoundMember.resident_id, RoundMember.sampled_at, latest_first.label("n"))
        .join(Round, Round.id == RoundMember.round_id)
        .where(*closed_pcr_in_places(RoundMember, Round), RoundMember.resident_id.in_(unsampled))
    )
    last_two = ranked.subquery()
    missed_both = (
        select(last_two.c.resident_id)
        .where(last_two.c.n <= 2)
        .group_by(last_two.c.resident_id)
        .having(func.count() == 2, func.count(last_two.c.sampled_at) == 0)
    )
    query = _residents(DirectoryResident, DirectoryResident.id).where(
        DirectoryResident.id.in_(missed_both)
    )
    return await _page_of_residents(
        uow,
        query,
        id_column=DirectoryResident.id,
        cursor=cursor,
        limit=limit,
    )
