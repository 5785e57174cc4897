"""The results' named reads: uploads as each role may see them, and where a round's members
stand."""

import uuid
from typing import Any

from sqlalchemy import select

from services.testing.models import DirectoryResident, ResultUpload, RoundMember
from shared.auth import Role
from shared.pagination import fetch_page, keyset, next_cursor, where_given
from shared.problems import NotFound
from shared.uow import UnitOfWork

TOWN_WIDE = frozenset({Role.town_operator, Role.service})


def _uploads(uow: UnitOfWork) -> Any:
    query = select(ResultUpload)
    if uow.principal.role not in TOWN_WIDE:
        # An upload's errors name tubes of any compound; staff see the uploads they made.
        query = query.where(ResultUpload.created_by == uow.principal.username)
    return query


async def uploads_page(
    uow: UnitOfWork, *, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    return await fetch_page(uow.session, _uploads(uow), ResultUpload.id, cursor=cursor, limit=limit)


async def upload(uow: UnitOfWork, upload_id: uuid.UUID) -> ResultUpload:
    found = await uow.session.scalar(_uploads(uow).where(ResultUpload.id == upload_id))
    if found is None:
        raise NotFound(f"no results upload {upload_id} of yours")
    return found


async def members_page(
    uow: UnitOfWork,
    *,
    round_id: uuid.UUID,
    status: str | None,
    compound_id: uuid.UUID | None,
    building_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """A page of the round's members, each with its directory resident (or none): rows of
    the member, the resident and ``id`` (the member's resident id, the page's key)."""
    query = where_given(
        select(RoundMember, DirectoryResident, RoundMember.resident_id.label("id"))
        .outerjoin(DirectoryResident, DirectoryResident.id == RoundMember.resident_id)
        .where(RoundMember.round_id == round_id),
        (RoundMember.status, status),
        (RoundMember.compound_id, compound_id),
        (RoundMember.building_id, building_id),
    )
    query = keyset(query, RoundMember.resident_id, cursor=cursor, limit=limit)
    return next_cursor(list((await uow.session.execute(query)).all()), limit)
