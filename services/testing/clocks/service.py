"""The compound's clock: whole days since its last positive, and the announcement that it has
gone the town's run of days (14 by default) without one.

The rule: a compound's clock counts from its latest confirmed case (``Case.confirmed_at``).
A compound that never had a case counts from the start of its first round that opened (the
day testing there began); one with neither has no clock yet. A new case restarts the clock,
and a run of days is announced once: the periodic job marks
``CompoundClock.eligible_reported_at`` in the same transaction as the event, with an update
that only succeeds while the mark predates the run, so replicas and repeated ticks publish
it once."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, update

from services.testing.clocks import schemas
from services.testing.models import (
    EPIDEMIC_FREE_DAYS,
    Case,
    CompoundClock,
    DirectoryPlace,
    Policy,
    Round,
    RoundMember,
)
from shared.contracts.testing import CompoundEpidemicFreeEligible
from shared.db import AnySelect, insert_ignoring_duplicates, table_of
from shared.uow import UnitOfWork

DAY = timedelta(days=1)


def readings_query(*, compound_id: uuid.UUID | None = None) -> AnySelect:
    """Each compound with its last positive, its first round's start and its last
    announcement; one correlated lookup per compound on indexed columns."""
    last_positive = (
        select(func.max(Case.confirmed_at))
        .where(Case.compound_id == DirectoryPlace.id)
        .scalar_subquery()
    )
    first_round = (
        select(func.min(Round.starts_at))
        .where(
            Round.opened_at.is_not(None),
            # Two levels down: say which place it is, or it would mean any place.
            exists()
            .where(RoundMember.round_id == Round.id, RoundMember.compound_id == DirectoryPlace.id)
            .correlate(Round, DirectoryPlace),
        )
        .scalar_subquery()
    )
    query = (
        select(
            DirectoryPlace.id,
            DirectoryPlace.town_id,
            DirectoryPlace.code,
            DirectoryPlace.name,
            last_positive.label("last_positive_at"),
            first_round.label("first_round_at"),
            CompoundClock.eligible_reported_at,
        )
        .outerjoin(CompoundClock, CompoundClock.id == DirectoryPlace.id)
        .where(DirectoryPlace.kind == "compound")
    )
    if compound_id is not None:
        query = query.where(DirectoryPlace.id == compound_id)
    return query


async def run_lengths(uow: UnitOfWork, town_ids: set[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each town's run of days, from its policy or the default."""
    query = select(Policy.town_id, Policy.epidemic_free_days).where(Policy.town_id.in_(town_ids))
    found: dict[uuid.UUID, int] = dict((await uow.session.execute(query)).all())
    return {town: found.get(town, EPIDEMIC_FREE_DAYS) for town in town_ids}


def reading(row: Any, *, days_needed: int, now: datetime) -> schemas.CompoundClockOut:
    since, counted_from = row.last_positive_at, "last_positive"
    if since is None:
        since, counted_from = row.first_round_at, "first_round"
    days = None if since is None else max(0, (now - since) // DAY)
    return schemas.CompoundClockOut(
        compound_id=row.id,
        town_id=row.town_id,
        code=row.code,
        name=row.name,
        last_positive_at=row.last_positive_at,
        counting_from=since,
        counted_from=counted_from if since is not None else None,
        days_without_positive=days,
        epidemic_free_days=days_needed,
        eligible=days is not None and days >= days_needed,
        eligible_reported_at=row.eligible_reported_at,
    )


async def readings(
    uow: UnitOfWork, rows: list[Any], *, now: datetime
) -> list[schemas.CompoundClockOut]:
    needed = await run_lengths(uow, {row.town_id for row in rows})
    return [reading(row, days_needed=needed[row.town_id], now=now) for row in rows]


async def announce_eligible(uow: UnitOfWork, now: datetime) -> None:
    """The periodic job: publish ``testing.compound.epidemic_free_eligible`` for every compound
    whose current run of days reached the town's length and was not announced yet."""
    rows = (await uow.session.execute(readings_query())).all()
    for clock in await readings(uow, list(rows), now=now):
        if not clock.eligible or clock.counting_from is None:
            continue
        reached_at = clock.counting_from + timedelta(days=clock.epidemic_free_days)
        if clock.eligible_reported_at is not None and clock.eligible_reported_at >= reached_at:
            continue
        if await _mark(uow, clock, reached_at=reached_at, now=now):
            uow.emit(
                CompoundEpidemicFreeEligible(
                    town_id=clock.town_id,
                    compound_id=clock.compound_id,
                    days_without_positive=clock.days_without_positive or 0,
                    last_positive_at=clock.last_positive_at,
                    at=now,
                ),
                compound_id=clock.compound_id,
            )


async def _mark(
    uow: UnitOfWork, clock: schemas.CompoundClockOut, *, reached_at: datetime, now: datetime
) -> bool:
    """Mark the run as announced; False when another replica (or an earlier tick) did."""
    await uow.session.execute(
        insert_ignoring_duplicates(table_of(CompoundClock), uow.dialect).values(
            id=clock.compound_id,
            town_id=clock.town_id,
            compound_id=clock.compound_id,
            building_id=None,
            last_positive_at=clock.last_positive_at,
            eligible_reported_at=None,
        )
    )
    marked = await uow.session.execute(
        update(CompoundClock)
        .where(
            CompoundClock.id == clock.compound_id,
            or_(
                CompoundClock.eligible_reported_at.is_(None),
                CompoundClock.eligible_reported_at < reached_at,
            ),
        )
        .values(eligible_reported_at=now, last_positive_at=clock.last_positive_at)
        .execution_options(synchronize_session=False)
    )
    return bool(marked.rowcount == 1)  # type: ignore[attr-defined]
