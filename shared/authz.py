"""Who may see and change what: the one authorization mechanism every service uses.

**Places.** Every row of placed data (:class:`Scoped`) carries its town, and as far down as it
is placed its committee, compound and building. A row is placed at its most specific level:
a building's resident at the building, a committee's volunteer pool at the committee, a
town-wide round at the town.

**Reads.** A caller's :class:`Scope` names the places they see. Every statement a session
executes on a placed table, ORM or Core, subqueries and ``INSERT ... SELECT`` sources
included, is filtered by the session's scope: a session hook adds the condition, so a
service cannot forget it. A session with no scope refuses such statements; system work
(consumers, imports, re-sync) says ``Scope.system()`` out loud, and the one town-wide check
(document-number uniqueness) says ``UNSCOPED`` and shows nothing found.

**Writes.** A :class:`Policy` per resource and action declares the roles that may act and
whether the object's place must lie inside the caller's scope (``manages``) or only be
visible to them (``sees``). A service checks it on the object (or, for a create, on where
the new row goes) before changing anything; the HTTP boundary refuses to commit a mutating
request whose unit of work checked no policy, so an endpoint cannot reach a write without
its check. The table of who may do what is in docs/architecture.md.
"""

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, FromClause, Table, and_, event, false, literal, or_, true
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria
from sqlalchemy.sql import Alias, Delete, Join, Select, Update, visitors
from sqlalchemy.sql.base import _from_objects
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.selectable import SelectState
from sqlalchemy.types import Uuid

from shared.problems import Forbidden

if TYPE_CHECKING:
    from shared.uow import UnitOfWork


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
    committees = "committees"
    compounds = "compounds"
    buildings = "buildings"


@dataclass(frozen=True)
class Place:
    """Where a row is placed (or a new one would go), as far down as it goes."""

    town_id: uuid.UUID
    committee_id: uuid.UUID | None = None
    compound_id: uuid.UUID | None = None
    building_id: uuid.UUID | None = None

    @classmethod
    def of(cls, row: "Scoped") -> "Place":
        return cls(row.town_id, row.committee_id, row.compound_id, row.building_id)

    def columns(self) -> dict[str, uuid.UUID | None]:
        return {
            "town_id": self.town_id,
            "committee_id": self.committee_id,
            "compound_id": self.compound_id,
            "building_id": self.building_id,
        }

    @classmethod
    def common(cls, places: Iterable["Place"], *, town_id: uuid.UUID) -> "Place":
        """The most specific place that holds all of them (their town when they are none):
        a round over two compounds of one committee is placed at that committee."""
        places = list(places)
        if not places or any(p.town_id != town_id for p in places):
            return cls(town_id)

        def shared(level: str) -> uuid.UUID | None:
            values = {getattr(p, level) for p in places}
            return values.pop() if len(values) == 1 and None not in values else None

        def known(level: str) -> uuid.UUID | None:
            return next((getattr(p, level) for p in places if getattr(p, level)), None)

        if building := shared("building_id"):
            return cls(town_id, known("committee_id"), known("compound_id"), building)
        if compound := shared("compound_id"):
            return cls(town_id, known("committee_id"), compound)
        if committee := shared("committee_id"):
            return cls(town_id, committee)
        return cls(town_id)

    def describe(self) -> str:
        for level, value in (
            ("building", self.building_id),
            ("compound", self.compound_id),
            ("committee", self.committee_id),
        ):
            if value is not None:
                return f"{level} {value}"
        return f"town {self.town_id}"


@dataclass(frozen=True)
class Scope:
    """The places a caller may see. Narrower kinds also see the rows placed above them on
    their way up (their compound's gates, their committee's volunteer pool, the town's
    committees) but never their neighbours' rows at any level."""

    kind: ScopeKind
    towns: frozenset[uuid.UUID] = field(default_factory=frozenset)
    committees: frozenset[uuid.UUID] = field(default_factory=frozenset)
    compounds: frozenset[uuid.UUID] = field(default_factory=frozenset)
    buildings: frozenset[uuid.UUID] = field(default_factory=frozenset)
    # A ``buildings`` scope's compounds assigned whole (a volunteer serving a compound): every
    # building of theirs is held, without listing each in the token.
    entire_compounds: frozenset[uuid.UUID] = field(default_factory=frozenset)

    @classmethod
    def system(cls) -> "Scope":
        return cls(kind=ScopeKind.system)

    @classmethod
    def of(
        cls,
        kind: ScopeKind,
        *,
        towns: Iterable[uuid.UUID] = (),
        committees: Iterable[uuid.UUID] = (),
        compounds: Iterable[uuid.UUID] = (),
        buildings: Iterable[uuid.UUID] = (),
        entire_compounds: Iterable[uuid.UUID] = (),
    ) -> "Scope":
        return cls(
            kind,
            frozenset(towns),
            frozenset(committees),
            frozenset(compounds),
            frozenset(buildings),
            frozenset(entire_compounds),
        )

    def holds_building(self, *, building_id: uuid.UUID, compound_id: uuid.UUID | None) -> bool:
        """Whether a ``buildings`` scope holds this building: listed, or in a compound
        assigned whole."""
        return building_id in self.buildings or compound_id in self.entire_compounds

    def allows(
        self,
        *,
        town_id: uuid.UUID | None,
        committee_id: uuid.UUID | None = None,
        compound_id: uuid.UUID | None = None,
        building_id: uuid.UUID | None = None,
    ) -> bool:
        """Whether a row placed here is visible: the same rule as :meth:`clause`."""
        match self.kind:
            case ScopeKind.system:
                return True
            case ScopeKind.towns:
                return town_id in self.towns
            case _:
                if building_id is not None and self.kind is ScopeKind.buildings:
                    return self.holds_building(building_id=building_id, compound_id=compound_id)
                if compound_id is not None:
                    return compound_id in self.compounds
                if committee_id is not None:
                    return committee_id in self.committees
                return town_id in self.towns

    def sees(self, place: Place) -> bool:
        return self.allows(**place.columns())

    def manages(self, place: Place) -> bool:
        """Whether the place lies inside the scope: the caller's own town, committee,
        compounds or buildings, not merely a place above them that they can see."""
        match self.kind:
            case ScopeKind.system:
                return True
            case ScopeKind.towns:
                return place.town_id in self.towns
            case ScopeKind.buildings:
                return place.building_id is not None and self.holds_building(
                    building_id=place.building_id, compound_id=place.compound_id
                )
            case _:
                if place.compound_id is not None:
                    return place.compound_id in self.compounds
                return place.committee_id in self.committees

    def managed(self, c: Any) -> ColumnElement[bool]:
        """The same rule as :meth:`manages`, as a condition on a mapped class (or anything with
        the four placement columns):
        for lists of what the caller manages rather than sees (accounts)."""
        match self.kind:
            case ScopeKind.system:
                return true()
            case ScopeKind.towns:
                return _in(c.town_id, self.towns)
            case ScopeKind.buildings:
                return _holds_building(self, c)
        return or_(
            _in(c.compound_id, self.compounds),
            and_(c.compound_id.is_(None), _in(c.committee_id, self.committees)),
        )

    def clause(self, table: FromClause) -> ColumnElement[bool]:
        """The same rule as :meth:`allows`, as a condition on a Core table (or alias)."""
        return _visible(self, table.c)

    def claims(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "towns": sorted(str(t) for t in self.towns),
            "committees": sorted(str(c) for c in self.committees),
            "compounds": sorted(str(c) for c in self.compounds),
            "buildings": sorted(str(b) for b in self.buildings),
            **(
                {"entire_compounds": sorted(str(c) for c in self.entire_compounds)}
                if self.entire_compounds
                else {}
            ),
        }

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> "Scope":
        return cls.of(
            ScopeKind(claims["kind"]),
            towns=(uuid.UUID(t) for t in claims.get("towns", ())),
            committees=(uuid.UUID(c) for c in claims.get("committees", ())),
            compounds=(uuid.UUID(c) for c in claims.get("compounds", ())),
            buildings=(uuid.UUID(b) for b in claims.get("buildings", ())),
            entire_compounds=(uuid.UUID(c) for c in claims.get("entire_compounds", ())),
        )


def _visible(scope: Scope, c: Any) -> ColumnElement[bool]:
    """A row is visible when the scope holds its most specific place (a Core condition)."""
    match scope.kind:
        case ScopeKind.system:
            return true()
        case ScopeKind.towns:
            return _in(c.town_id, scope.towns)
    above_compound = or_(
        _in(c.compound_id, scope.compounds),
        and_(c.compound_id.is_(None), _in(c.committee_id, scope.committees)),
        and_(c.compound_id.is_(None), c.committee_id.is_(None), _in(c.town_id, scope.towns)),
    )
    if scope.kind is not ScopeKind.buildings:
        return above_compound
    return or_(_holds_building(scope, c), and_(c.building_id.is_(None), above_compound))


def _holds_building(scope: Scope, c: Any) -> ColumnElement[bool]:
    """Rows of the buildings a ``buildings`` scope holds: listed, or in a compound assigned
    whole (:meth:`Scope.holds_building`)."""
    if not scope.entire_compounds:
        return _in(c.building_id, scope.buildings)
    return or_(
        _in(c.building_id, scope.buildings),
        and_(c.building_id.is_not(None), _in(c.compound_id, scope.entire_compounds)),
    )


def _in(column: Any, values: frozenset[uuid.UUID]) -> ColumnElement[bool]:
    """``column IN (...)`` with one plain parameter per value, not one expanding parameter:
    Core statements run with executemany (an UPDATE per tube member) cannot expand."""
    if not values:
        return false()
    return column.in_([literal(v, Uuid()) for v in sorted(values)])


PLACED = "cordon_placed"


class Scoped:
    """Mixin for every entity that belongs to a place. ``town_id`` is always set;
    ``committee_id``, ``compound_id`` and ``building_id`` as far down as the row is placed
    (a row placed at a compound or below need not repeat its committee)."""

    town_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    committee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    compound_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    building_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Mark the table, so Core statements on it are scoped like ORM queries.
        table = getattr(cls, "__table__", None)
        if isinstance(table, Table):
            table.info[PLACED] = True


def is_placed(table: Any) -> bool:
    return isinstance(table, Table) and bool(table.info.get(PLACED))


class UnscopedQueryError(RuntimeError):
    pass


SCOPE_KEY = "cordon.scope"
# Execution options for the rare query that must look beyond the caller's scope (a
# town-wide uniqueness check); its results must not be shown to the caller.
UNSCOPED: dict[str, object] = {"cordon_unscoped": True}


@event.listens_for(Session, "do_orm_execute")
def _filter_by_scope(state: ORMExecuteState) -> None:
    if state.execution_options.get("cordon_unscoped"):
        return
    if state.is_orm_statement:
        _filter_orm(state)
    else:
        _filter_core(state)


def _session_scope(state: ORMExecuteState) -> Scope:
    scope = state.session.info.get(SCOPE_KEY)
    if not isinstance(scope, Scope):
        raise UnscopedQueryError("a query on placed data needs a scope on its session")
    return scope


def _filter_orm(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    # ``all_mappers`` misses an entity named only in ``select_from`` (a count): look at
    # the tables too.
    placed = any(issubclass(m.class_, Scoped) for m in state.all_mappers)
    if not (placed or any(is_placed(t) for t in _tables_read(state.statement))):
        return
    scope = _session_scope(state)
    if scope.kind is not ScopeKind.system:
        state.statement = state.statement.options(_criteria(scope))


def _criteria(scope: Scope) -> Any:
    """The scope as loader criteria on every Scoped entity, subqueries included, built once
    per scope (an option is immutable, so one serves every statement of the scope)."""
    criteria = _recall(_criteria_memo, scope)
    if criteria is None:
        criteria = _loader_criteria(scope)
        _remember(_criteria_memo, scope, criteria)
    return criteria


def _loader_criteria(scope: Scope) -> Any:
    """The lambdas are cached by SQLAlchemy by their code, one per kind; their closure
    variables become bound parameters."""
    towns, committees = list(scope.towns), list(scope.committees)
    compounds, buildings = list(scope.compounds), list(scope.buildings)
    entire = list(scope.entire_compounds)
    match scope.kind:
        case ScopeKind.towns:
            return with_loader_criteria(
                Scoped, lambda cls: cls.town_id.in_(towns), include_aliases=True
            )
        case ScopeKind.buildings:
            return with_loader_criteria(
                Scoped,
                lambda cls: or_(
                    cls.building_id.in_(buildings),
                    and_(cls.building_id.is_not(None), cls.compound_id.in_(entire)),
                    and_(
                        cls.building_id.is_(None),
                        or_(
                            cls.compound_id.in_(compounds),
                            and_(cls.compound_id.is_(None), cls.committee_id.in_(committees)),
                            and_(
                                cls.compound_id.is_(None),
                                cls.committee_id.is_(None),
                                cls.town_id.in_(towns),
                            ),
                        ),
                    ),
                ),
                include_aliases=True,
            )
        case _:
            return with_loader_criteria(
                Scoped,
                lambda cls: or_(
                    cls.compound_id.in_(compounds),
                    and_(cls.compound_id.is_(None), cls.committee_id.in_(committees)),
                    and_(
                        cls.compound_id.is_(None),
                        cls.committee_id.is_(None),
                        cls.town_id.in_(towns),
                    ),
                ),
                include_aliases=True,
            )


def _filter_core(state: ORMExecuteState) -> None:
    """Core statements on placed tables: refused without a scope, filtered with one. An
    INSERT's target is not read (only its ``SELECT`` source is); an UPDATE's or DELETE's
    target and ``FROM`` tables are."""
    statement = state.statement
    if not isinstance(statement, (Select, Update, Delete, Insert)):
        return
    if not _reads_placed(statement):
        return
    scope = _session_scope(state)
    if scope.kind is not ScopeKind.system:
        state.statement = _scoped_core_once(statement, scope)


# A statement built once per process (a hot path's) is scoped once per scope and reused:
# the same object again keeps SQLAlchemy's memoized cache key, so it is neither rewritten
# nor traversed again. Statements are immutable (generative methods copy), so the answer
# for a statement object never changes; the caches only bound how many are kept.
_MEMO_SIZE = 512
_placed_memo: dict[Any, bool] = {}
_scoped_memo: dict[tuple[Any, Scope], Any] = {}
_criteria_memo: dict[Scope, Any] = {}
_clause_memo: dict[tuple[Table, Scope], Any] = {}


def _reads_placed(statement: Any) -> bool:
    found = _recall(_placed_memo, statement)
    if found is None:
        found = any(is_placed(t) for t in _tables_read(statement))
        _remember(_placed_memo, statement, found)
    return bool(found)


def _scoped_core_once(statement: Any, scope: Scope) -> Any:
    key = (statement, scope)
    scoped = _recall(_scoped_memo, key)
    if scoped is None:
        scoped = _scoped_core(statement, scope)
        _remember(_scoped_memo, key, scoped)
    return scoped


def _recall(memo: dict[Any, Any], key: Any) -> Any:
    """The entry, now the most recently used (statements built per call pass through
    without pushing out the hot ones)."""
    found = memo.pop(key, None)
    if found is not None:
        memo[key] = found
    return found


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _MEMO_SIZE:
        del memo[next(iter(memo))]
    memo[key] = value


def _tables_read(statement: Any) -> Iterator[Any]:
    target = statement.table if isinstance(statement, Insert) else None
    source = statement.select if isinstance(statement, Insert) else statement
    if source is None:
        return
    for element in visitors.iterate(source):
        if element is not target and isinstance(element, Table):
            yield element


def _leaves(from_: Any) -> Iterator[FromClause]:
    """Tables and table aliases of a FROM element (through joins, not into subqueries)."""
    if isinstance(from_, Join):
        yield from _leaves(from_.left)
        yield from _leaves(from_.right)
    elif is_placed(from_) or (isinstance(from_, Alias) and is_placed(from_.element)):
        yield from_


def _clause(scope: Scope, leaf: FromClause) -> ColumnElement[bool]:
    """The scope's condition on a table, built once per table and scope (an alias is new
    with its statement: built each time)."""
    if not isinstance(leaf, Table):
        return scope.clause(leaf)
    key = (leaf, scope)
    clause = _recall(_clause_memo, key)
    if clause is None:
        clause = scope.clause(leaf)
        _remember(_clause_memo, key, clause)
    return clause


def _final_froms(select: Select[Any]) -> Sequence[FromClause]:
    """The FROM list a SELECT renders. ``Select.get_final_froms`` compiles the whole
    statement to a string to find it (most of the cost of scoping a statement built per
    call); a Core SELECT's compile state computes it without compiling."""
    if select._propagate_attrs.get("compile_state_plugin") == "orm":
        return select.get_final_froms()
    return SelectState(select, None)._get_display_froms()  # type: ignore[arg-type]


def _nests_selects(statement: Any) -> bool:
    """Whether a SELECT is inside the statement (a subquery, an EXISTS, a CTE, an INSERT's
    source)."""
    return any(isinstance(e, Select) and e is not statement for e in visitors.iterate(statement))


def _scoped_core(statement: Any, scope: Scope) -> Any:
    def conditions(select: Select[Any]) -> list[ColumnElement[bool]]:
        return [_clause(scope, leaf) for from_ in _final_froms(select) for leaf in _leaves(from_)]

    def scope_select(select: Select[Any]) -> None:
        # ``cloned_traverse`` hands over a fresh copy of each SELECT, safe to extend in place.
        select._where_criteria += tuple(conditions(select))

    if not _nests_selects(statement):
        # Most statements an endpoint builds: the one SELECT (or none) is scoped where it
        # stands, without copying the whole statement first.
        if isinstance(statement, Select):
            return statement.where(*conditions(statement))
        scoped = statement
    else:
        scoped = visitors.cloned_traverse(statement, {}, {"select": scope_select})
    if isinstance(scoped, (Update, Delete)):
        froms = [scoped.table, *(f for c in scoped._where_criteria for f in _from_objects(c))]
        seen: set[int] = set()
        for from_ in froms:
            for leaf in _leaves(from_):
                if id(leaf) not in seen:
                    seen.add(id(leaf))
                    scoped = scoped.where(_clause(scope, leaf))
    return scoped


class Relation(StrEnum):
    """How the object's place must stand to the caller's scope."""

    manages = "manages"  # inside it: their own town, committee, compounds or buildings
    sees = "sees"  # visible to them (a town-wide round a volunteer samples in)


@dataclass(frozen=True)
class Policy:
    """Who may perform ``action`` on ``resource``: one of ``roles``, on an object whose place
    stands in ``relation`` to their scope. Declared once per feature; checked by its service
    on the object before it changes anything."""

    resource: str
    action: str
    roles: frozenset[Role]
    relation: Relation = Relation.manages

    def check(self, uow: "UnitOfWork", place: Place, *, field: str | None = None) -> None:
        self.check_role(uow)
        scope = uow.principal.scope
        allowed = scope.manages(place) if self.relation is Relation.manages else scope.sees(place)
        if not allowed:
            message = f"{place.describe()} is outside what you may {self.action}"
            raise Forbidden.on(field, message) if field else Forbidden(message)

    def check_role(self, uow: "UnitOfWork") -> None:
        """The role alone, for the check whose place comes row by row (each row's place is
        then checked with :meth:`allows`)."""
        uow.checked.append(f"{self.resource}:{self.action}")
        role = uow.principal.role
        if uow.principal.scope.kind is not ScopeKind.system and role not in self.roles:
            raise Forbidden(f"a {role.value} may not {self.action} {self.resource}")

    def allows(self, uow: "UnitOfWork", place: Place) -> bool:
        scope = uow.principal.scope
        if self.relation is Relation.manages:
            return scope.manages(place)
        return scope.sees(place)


def policy(
    resource: str, action: str, *roles: Role, relation: Relation = Relation.manages
) -> Policy:
    return Policy(resource, action, frozenset(roles), relation)


def own_rows(uow: "UnitOfWork", person: Any) -> ColumnElement[bool] | None:
    """Beyond the scope, what a volunteer reads: only the rows that are theirs, ``person``
    being the column naming whom a row is for (an errand's assignee, a message's
    recipient). ``None`` for every other role (their scope is the whole answer)."""
    principal = uow.principal
    if principal.role is not Role.volunteer or principal.scope.kind is ScopeKind.system:
        return None
    if principal.person_id is None:
        # An account of nobody in particular has nothing of its own.
        return false()
    return person == uuid.UUID(principal.person_id)


# Role groups the policies are made of.
TOWN = (Role.town_operator,)
MANAGERS = (Role.town_operator, Role.committee_staff, Role.service)
FIELD = (*MANAGERS, Role.grid_leader, Role.building_leader, Role.volunteer)

__all__ = [
    "FIELD",
    "MANAGERS",
    "SCOPE_KEY",
    "TOWN",
    "UNSCOPED",
    "Place",
    "Policy",
    "Relation",
    "Role",
    "Scope",
    "ScopeKind",
    "Scoped",
    "UnscopedQueryError",
    "is_placed",
    "own_rows",
    "policy",
]
