"""Who may change what in the registry. Reads are filtered by scope everywhere; writes also
need a role that manages places and people."""

import uuid
from typing import Any

from sqlalchemy import ColumnElement, or_, select, true

from services.registry.models import Committee, Compound
from shared.auth import Role, ScopeKind
from shared.problems import Forbidden
from shared.uow import UnitOfWork

MANAGERS = frozenset({Role.town_operator, Role.committee_staff, Role.service})


def _forbidden(message: str, field: str | None) -> Forbidden:
    return Forbidden.on(field, message) if field else Forbidden(message)


def require_manager(uow: UnitOfWork) -> None:
    if uow.principal.role not in MANAGERS:
        raise Forbidden(f"a {uow.principal.role.value} may read here but not change anything")


def require_town_operator(uow: UnitOfWork, town_id: uuid.UUID, *, field: str | None = None) -> None:
    scope = uow.scope
    if scope.kind is ScopeKind.system:
        return
    if uow.principal.role is not Role.town_operator or town_id not in scope.towns:
        raise _forbidden(f"only an operator of town {town_id} may do this", field)


def require_compound(
    uow: UnitOfWork,
    compound_id: uuid.UUID | None,
    town_id: uuid.UUID,
    *,
    field: str | None = None,
) -> None:
    """The caller manages people and places in this compound."""
    require_manager(uow)
    if compound_id is None or not uow.scope.allows(town_id=town_id, compound_id=compound_id):
        raise _forbidden(f"compound {compound_id} is outside your scope", field)


def _sees_whole_towns(uow: UnitOfWork) -> bool:
    return uow.scope.kind in (ScopeKind.system, ScopeKind.towns)


async def require_committee(
    uow: UnitOfWork, committee: Committee, *, field: str | None = None
) -> None:
    """The caller manages this committee's own people and teams: an operator of its town,
    or committee staff who see one of its compounds."""
    require_manager(uow)
    if _sees_whole_towns(uow):
        allowed = uow.scope.allows(town_id=committee.town_id)
    else:
        mine = select(Compound.id).where(Compound.committee_id == committee.id).limit(1)
        allowed = await uow.session.scalar(mine) is not None
    if not allowed:
        raise _forbidden(f"committee {committee.code} is outside your scope", field)


def committee_rows_visible(uow: UnitOfWork, model: Any) -> ColumnElement[bool]:
    """A condition that hides rows placed on another committee (``committee_id`` set,
    ``compound_id`` empty). The kernel's scope has no committee level, so such rows would
    otherwise show to every committee of the town; here they show to callers who see one
    of that committee's compounds (the compound query is itself scope-filtered)."""
    if _sees_whole_towns(uow):
        return true()
    return or_(
        model.compound_id.is_not(None),
        model.committee_id.is_(None),
        model.committee_id.in_(select(Compound.committee_id)),
    )
