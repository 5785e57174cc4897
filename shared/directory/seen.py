"""What an object placed above the caller's scope shows them of its own scope. The town office's
round, plan or broadcast over compounds of two committees is visible to both committees (as
every town-level row is), but each committee's people may read only their own places of it:
its scope's ids are narrowed to those the caller sees in the directory, read through their
scope like every read. One rule for every service that keeps a directory. An object whose
figures are the whole's and cannot be split (the registry's ledger import) is not shown
above the scope at all: ``inside_scope`` is the rule as a condition for its reads."""

import uuid
from collections.abc import Sequence
from typing import Protocol, cast

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Mapped

from shared.authz import Place, Scoped
from shared.uow import UnitOfWork


def above_scope(uow: UnitOfWork, row: Scoped) -> bool:
    """Whether the row is placed above the caller's scope (seen, not managed): then it shows
    them their part only."""
    return not uow.scope.manages(Place.of(row))


def inside_scope(uow: UnitOfWork, model: type[Scoped]) -> ColumnElement[bool]:
    """The rows of ``model`` not placed above the caller's scope (:func:`above_scope` as a
    condition): for objects that cannot show a part, which above the scope show nothing."""
    return uow.scope.managed(model)


class Identified(Protocol):
    """Placed rows with an id: the directory's places and residents, or a service's own
    (the registry, which keeps no directory, reads its people)."""

    @property
    def id(self) -> Mapped[uuid.UUID]: ...


async def scope_ids_seen(
    uow: UnitOfWork, *, placed: Scoped, rows: type[Identified], ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The ``ids`` of ``placed``'s scope (``rows``: directory places, or residents; the
    registry's people) the caller may read, in their order: all of them when it lies inside
    their scope, else those their scope shows them."""
    [seen] = await scope_ids_seen_each(uow, rows=rows, named=[(placed, ids)])
    return seen


async def scope_ids_seen_each(
    uow: UnitOfWork,
    *,
    rows: type[Identified],
    named: Sequence[tuple[Scoped, Sequence[uuid.UUID]]],
) -> list[list[uuid.UUID]]:
    """:func:`scope_ids_seen` for each object of a list and the ids it names, read in one
    query (a page of objects costs one read, not one per object)."""
    above = [above_scope(uow, placed) for placed, _ in named]
    asked = {i for (_, ids), up in zip(named, above, strict=True) if up for i in ids}
    seen: set[uuid.UUID] = set()
    if asked:
        # The protocol reads ``id`` as an instance's; on the mapped class it is the column.
        column = cast("InstrumentedAttribute[uuid.UUID]", rows.id)
        seen = set((await uow.session.scalars(select(column).where(column.in_(asked)))).all())
    return [
        [i for i in ids if i in seen] if up else list(ids)
        for (_, ids), up in zip(named, above, strict=True)
    ]
