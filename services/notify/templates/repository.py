"""Named queries on the templates a town stored (its edits and its own keys)."""

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from services.notify.models import Template
from shared.uow import UnitOfWork


async def latest_stored(uow: UnitOfWork, *, town_id: uuid.UUID, key: str) -> Template | None:
    query = (
        select(Template)
        .where(Template.town_id == town_id, Template.key == key)
        .order_by(Template.version.desc())
        .limit(1)
    )
    return await uow.session.scalar(query)


async def stored_version(
    uow: UnitOfWork, *, town_id: uuid.UUID, key: str, version: int
) -> Template | None:
    query = select(Template).where(
        Template.town_id == town_id, Template.key == key, Template.version == version
    )
    return await uow.session.scalar(query)


async def stored_versions(uow: UnitOfWork, *, town_id: uuid.UUID, key: str) -> Sequence[Template]:
    query = (
        select(Template)
        .where(Template.town_id == town_id, Template.key == key)
        .order_by(Template.version)
    )
    return list(await uow.session.scalars(query))


async def latest_of_town(uow: UnitOfWork, *, town_id: uuid.UUID) -> Sequence[Template]:
    """Each stored key's newest version in the town."""
    newest = (
        select(Template.key, func.max(Template.version).label("version"))
        .where(Template.town_id == town_id)
        .group_by(Template.key)
        .subquery()
    )
    query = (
        select(Template)
        .join(newest, (newest.c.key == Template.key) & (newest.c.version == Template.version))
        .where(Template.town_id == town_id)
        .order_by(Template.key)
    )
    return list(await uow.session.scalars(query))
