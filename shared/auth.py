"""Who is calling, and what they may see.

Every ORM query on a :class:`Scoped` entity is filtered by the session's scope, added by a
session hook, so a service cannot forget it: a session with no scope refuses such queries,
and system work (consumers, imports, re-sync) says ``Scope.system()`` out loud.
"""

import asyncio
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, FromClause, and_, event, or_, true
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria
from sqlalchemy.types import Uuid


class Role(StrEnum):
    town_operator = "town_operator"
    committee_staff = "committee_staff"
    grid_leader = "grid_leader"
    building_leader = "building_leader"
    volunteer = "volunteer"
    service = "service"


class ScopeKind(StrEnum):
    system = "system"
    towns = "towns"
    compounds = "compounds"
    buildings = "buildings"


@dataclass(frozen=True)
class Scope:
    """The places a caller may see. Narrower kinds also see the places above them
    (their compound's gates, their town's committees) but not their neighbours' people."""

    kind: ScopeKind
    towns: frozenset[uuid.UUID] = field(default_factory=frozenset)
    compounds: frozenset[uuid.UUID] = field(default_factory=frozenset)
    buildings: frozenset[uuid.UUID] = field(default_factory=frozenset)

    @classmethod
    def system(cls) -> "Scope":
        return cls(kind=ScopeKind.system)

    @classmethod
    def of(
        cls,
        kind: ScopeKind,
        *,
        towns: Iterable[uuid.UUID] = (),
        compounds: Iterable[uuid.UUID] = (),
        buildings: Iterable[uuid.UUID] = (),
    ) -> "Scope":
        return cls(kind, frozenset(towns), frozenset(compounds), frozenset(buildings))

    def allows(
        self,
        *,
        town_id: uuid.UUID | None,
        compound_id: uuid.UUID | None = None,
        building_id: uuid.UUID | None = None,
    ) -> bool:
        """Whether a row placed here is visible: the same rule as :meth:`criteria`."""
        match self.kind:
            case ScopeKind.system:
                return True
            case ScopeKind.towns:
                return town_id in self.towns
            case ScopeKind.compounds:
                if compound_id is not None:
                    return compound_id in self.compounds
                return town_id in self.towns
            case ScopeKind.buildings:
                if building_id is not None:
                    return building_id in self.buildings
                if compound_id is not None:
                    return compound_id in self.compounds
                return town_id in self.towns

    def clause(self, table: FromClause) -> ColumnElement[bool]:
        """The same rule as :meth:`allows`, as a condition on a Core table with town, compound
        and building columns: for set-based statements (``UPDATE ... FROM``) on Core tables,
        which the session hook does not see."""
        c = table.c
        match self.kind:
            case ScopeKind.system:
                return true()
            case ScopeKind.towns:
                return c.town_id.in_(self.towns)
            case ScopeKind.compounds:
                return or_(
                    c.compound_id.in_(self.compounds),
                    and_(c.compound_id.is_(None), c.town_id.in_(self.towns)),
                )
            case ScopeKind.buildings:
                return or_(
                    c.building_id.in_(self.buildings),
                    and_(c.building_id.is_(None), c.compound_id.in_(self.compounds)),
                    and_(c.compound_id.is_(None), c.town_id.in_(self.towns)),
                )

    def claims(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "towns": sorted(str(t) for t in self.towns),
            "compounds": sorted(str(c) for c in self.compounds),
            "buildings": sorted(str(b) for b in self.buildings),
        }

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> "Scope":
        return cls.of(
            ScopeKind(claims["kind"]),
            towns=(uuid.UUID(t) for t in claims.get("towns", ())),
            compounds=(uuid.UUID(c) for c in claims.get("compounds", ())),
            buildings=(uuid.UUID(b) for b in claims.get("buildings", ())),
        )


class Scoped:
    """Mixin for every entity that belongs to a place. ``town_id`` is always set;
    ``compound_id`` and ``building_id`` as far down as the row is placed."""

    town_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    compound_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    building_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)


class UnscopedQueryError(RuntimeError):
    pass


SCOPE_KEY = "cordon.scope"
# Execution options for the rare query that must look beyond the caller's scope (a
# town-wide uniqueness check); its results must not be shown to the caller.
UNSCOPED: dict[str, object] = {"cordon_unscoped": True}


@event.listens_for(Session, "do_orm_execute")
def _filter_by_scope(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if not any(issubclass(m.class_, Scoped) for m in state.all_mappers):
        return
    if state.execution_options.get("cordon_unscoped"):
        return
    scope = state.session.info.get(SCOPE_KEY)
    if not isinstance(scope, Scope):
        raise UnscopedQueryError("a query on placed data needs a scope on its session")
    if scope.kind is ScopeKind.system:
        return
    state.statement = state.statement.options(_criteria(scope))


def _criteria(scope: Scope) -> Any:
    """The scope as loader criteria on every Scoped entity, subqueries included. The lambdas
    are cached by SQLAlchemy; their closure variables become bound parameters."""
    towns, compounds, buildings = list(scope.towns), list(scope.compounds), list(scope.buildings)
    match scope.kind:
        case ScopeKind.towns:
            return with_loader_criteria(
                Scoped, lambda cls: cls.town_id.in_(towns), include_aliases=True
            )
        case ScopeKind.compounds:
            return with_loader_criteria(
                Scoped,
                lambda cls: or_(
                    cls.compound_id.in_(compounds),
                    and_(cls.compound_id.is_(None), cls.town_id.in_(towns)),
                ),
                include_aliases=True,
            )
        case _:
            return with_loader_criteria(
                Scoped,
                lambda cls: or_(
                    cls.building_id.in_(buildings),
                    and_(cls.building_id.is_(None), cls.compound_id.in_(compounds)),
                    and_(cls.compound_id.is_(None), cls.town_id.in_(towns)),
                ),
                include_aliases=True,
            )


@dataclass(frozen=True)
class Principal:
    id: str
    username: str
    role: Role
    scope: Scope
    # The account's token version when the token was issued, and the session (the chain of
    # refresh tokens) it belongs to: every service refuses it once either has moved on.
    version: int = 0
    session: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> "Principal":
        return cls(id=name, username=name, role=Role.service, scope=Scope.system())


def issue_token(principal: Principal, *, secret: str, minutes: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": principal.id,
        "name": principal.username,
        "role": principal.role.value,
        "scope": principal.scope.claims(),
        "ver": principal.version,
        "sid": principal.session,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


class InvalidTokenError(ValueError):
    pass


def read_token(token: str, *, secret: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "ver"]}
        )
        return Principal(
            id=claims["sub"],
            username=claims["name"],
            role=Role(claims["role"]),
            scope=Scope.from_claims(claims["scope"]),
            version=int(claims["ver"]),
            session=claims.get("sid"),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise InvalidTokenError(str(exc)) from exc


_hasher = PasswordHasher()
# argon2 holds a core and 64 MB for a fifth of a second: run it beside the event loop (the
# C code releases the GIL), at most two at a time so a burst of sign-ins queues here instead
# of taking every core and a gigabyte from the requests being served.
_hashing = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hashed(password: str) -> str:
    """:func:`hash_password` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_hashing, hash_password, password)


async def verified(password_hash: str, password: str) -> bool:
    """:func:`verify_password` off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hashing, verify_password, password_hash, password)
