"""Who may change what in the registry. Reads are filtered by scope everywhere; writes also
need a role that manages places and people."""

import uuid

from shared.auth import Role, ScopeKind
from shared.problems import Forbidden
from shared.uow import UnitOfWork

MANAGERS = frozenset({Role.town_operator, Role.committee_staff, Role.service})


def require_manager(uow: UnitOfWork) -> None:
    if uow.principal.role not in MANAGERS:
        raise Forbidden(f"a {uow.principal.role.value} may read here but not change anything")


def require_town_operator(uow: UnitOfWork, town_id: uuid.UUID) -> None:
    scope = uow.scope
    if scope.kind is ScopeKind.system:
        return
    if uow.principal.role is not Role.town_operator or town_id not in scope.towns:
        raise Forbidden(f"only an operator of town {town_id} may do this")


def require_compound(uow: UnitOfWork, compound_id: uuid.UUID | None, town_id: uuid.UUID) -> None:
    """The caller manages people and places in this compound."""
    require_manager(uow)
    if compound_id is None or not uow.scope.allows(town_id=town_id, compound_id=compound_id):
        raise Forbidden(f"compound {compound_id} is outside your scope")
