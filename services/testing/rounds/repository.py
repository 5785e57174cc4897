"""Rounds' reads that the endpoints name: rounds by page, their members counted, their
sampling sites."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from services.testing.models import Round, RoundMember, Site
from shared.pagination import fetch_page, where_given
from shared.uow import UnitOfWork


async def rounds_page(
    uow: UnitOfWork, *, status: str | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    query = where_given(select(Round), (Round.status, status))
    return await fetch_page(uow.session, query, Round.id, cursor=cursor, limit=limit)


async def member_counts(uow: UnitOfWork, round_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many members each of these rounds has (a round without any is left out)."""
    query = (
        select(RoundMember.round_id, func.count())
        .where(RoundMember.round_id.in_(round_ids))
        .group_by(RoundMember.round_id)
    )
    return {round_id: int(count) for round_id, count in (await uow.session.execute(query)).all()}


async def sites_of(uow: UnitOfWork, round_id: uuid.UUID) -> list[Site]:
    query = select(Site).where(Site.round_id == round_id).order_by(Site.name)
    return list(await uow.session.scalars(query))
