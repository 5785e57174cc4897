"""Signing in: check the password, then work out what the user may see from their role,
committee and assignments (the token carries that scope to every service). Sessions and
their tokens: ``sessions.py``; throttling: ``throttle.py``."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from services.registry.auth import schemas, sessions
from services.registry.auth.throttle import Attempt
from services.registry.models import (
    Assignment,
    Committee,
    Compound,
    GridBuilding,
    PersonKind,
    User,
)
from services.registry.people.service import find_person
from shared.auth import UNSCOPED, Role, Scope, ScopeKind, hashed, verified
from shared.authz import MANAGERS, Place, policy
from shared.pagination import keyset, next_cursor
from shared.problems import Conflict, Forbidden, Invalid, Unauthorized
from shared.settings import Settings
from shared.uow import UnitOfWork

# A hash to compare against when the user does not exist, so timing tells nothing. Written
# out rather than computed at import: hashing takes argon2's 64 MB and a fifth of a second
# in every process, workers and importers included, that never signs anyone in.
NO_USER_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$oOuibdOjOdiCYcl+eoP1Hw"
    "$Y+A3wpOsNaOklFqwV1Db/p7D9RgW9ScUpm6tMOcilKQ"
)


async def sign_in(
    uow: UnitOfWork, *, username: str, password: str, address: str, settings: Settings
) -> sessions.Tokens:
    attempt = Attempt(username=username, address=address, settings=settings)
    await attempt.admit(uow.kv)
    user = await uow.session.scalar(select(User).where(User.username == username))
    valid = await verified(user.password_hash if user else NO_USER_HASH, password)
    if user is None or not valid or not user.active:
        await attempt.failed(uow.kv)
        raise Unauthorized("wrong username or password")
    await attempt.succeeded(uow.kv)
    scope = await scope_of(uow, user)
    return await sessions.open_session(uow, user=user, scope=scope, settings=settings)


async def refresh(uow: UnitOfWork, *, refresh_token: str, settings: Settings) -> sessions.Tokens:
    """Spend a refresh token for a new pair, with the role and scope the account has now."""
    user, family, ends = await sessions.spend(uow, refresh_token=refresh_token)
    scope = await scope_of(uow, user)
    return await sessions.reissue(
        uow, user=user, scope=scope, family=family, ends=ends, settings=settings
    )


async def scope_of(uow: UnitOfWork, user: User) -> Scope:
    role = Role(user.role)
    towns = [user.town_id]
    if role in (Role.town_operator, Role.service):
        return Scope.of(ScopeKind.towns, towns=towns)
    if role is Role.committee_staff:
        query = select(Compound.id).where(Compound.committee_id == user.committee_id)
        compounds = list((await uow.session.scalars(query)).all())
        compounds += await _assigned_compounds(uow, user)
        committees = [user.committee_id] if user.committee_id else []
        return Scope.of(
            ScopeKind.committees, towns=towns, committees=committees, compounds=compounds
        )
    buildings, around, entire = await _assigned_buildings(uow, user)
    return Scope.of(
        ScopeKind.buildings,
        towns=towns,
        committees=await _committees_of(uow, around),
        compounds=around,
        buildings=buildings,
        entire_compounds=entire,
    )


async def _committees_of(uow: UnitOfWork, compounds: set[uuid.UUID]) -> set[uuid.UUID]:
    """The committees of a leader's compounds: they see their committee's own rows (its
    staff, volunteer pool, teams), no other committee's."""
    query = select(Compound.committee_id).where(Compound.id.in_(compounds))
    return set((await uow.session.scalars(query)).all())


async def _assigned_compounds(uow: UnitOfWork, user: User) -> list[uuid.UUID]:
    if user.person_id is None:
        return []
    query = select(Assignment.compound_id).where(
        Assignment.person_id == user.person_id, Assignment.building_id.is_(None)
    )
    return [c for c in (await uow.session.scalars(query)).all() if c is not None]


async def _assigned_buildings(
    uow: UnitOfWork, user: User
) -> tuple[set[uuid.UUID], set[uuid.UUID], set[uuid.UUID]]:
    """Buildings assigned directly, or through a grid (and its microgrids' buildings); the
    compounds around them; and the compounds assigned whole (every building of theirs:
    a volunteer serving the compound sees the errands given to them there)."""
    if user.person_id is None:
        return set(), set(), set()
    rows = (
        await uow.session.execute(
            select(Assignment.building_id, Assignment.compound_id, Assignment.grid_id).where(
                Assignment.person_id == user.person_id
            )
        )
    ).all()
    buildings = {b for b, _, grid in rows if b is not None and grid is None}
    compounds = {c for _, c, _ in rows if c is not None}
    entire = {c for b, c, grid in rows if b is None and grid is None and c is not None}
    grids = [g for _, _, g in rows if g is not None]
    if grids:
        members = await uow.session.execute(
            select(GridBuilding.building_id, GridBuilding.compound_id).where(
                GridBuilding.grid_id.in_(grids)
            )
        )
        for building_id, compound_id in members.all():
            if building_id is not None:
                buildings.add(building_id)
            if compound_id is not None:
                compounds.add(compound_id)
    return buildings, compounds, entire


# Who may open accounts of which role: operators any, committee staff their helpers.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.town_operator: frozenset(Role),
    Role.committee_staff: frozenset({Role.grid_leader, Role.building_leader, Role.volunteer}),
    Role.service: frozenset(Role),
}


# Accounts are managed where they are placed: a person's account at the person's place, a
# committee staff account at its committee, the others at the town.
ACCOUNTS = policy("accounts", "manage", *MANAGERS)


async def create_user(uow: UnitOfWork, *, data: schemas.UserCreate) -> User:
    ACCOUNTS.check_role(uow)
    creator = uow.principal.role
    if data.role not in GRANTS.get(creator, frozenset()) and uow.scope.kind is not ScopeKind.system:
        raise Forbidden(f"a {creator.value} may not open {data.role.value} accounts")
    if not uow.scope.allows(town_id=data.town_id):
        raise Forbidden(f"town {data.town_id} is outside your scope")
    place = Place(data.town_id)
    if data.role is Role.committee_staff:
        if data.committee_id is None:
            raise Invalid(
                "committee staff need a committee",
                errors=[{"field": "committee_id", "message": "required for committee_staff"}],
            )
        await uow.get(Committee, data.committee_id, what="committee", field="committee_id")
        place = Place(data.town_id, data.committee_id)
    if (data.person_kind is None) != (data.person_id is None):
        raise Invalid(
            "give person_kind and person_id together",
            errors=[{"field": "person_id", "message": "goes with person_kind"}],
        )
    if data.person_kind is not None and data.person_id is not None:
        # The account's scope comes from this person's assignments: they must exist, be
        # managed by the creator, and have no other account.
        person = await find_person(uow, kind=data.person_kind, person_id=data.person_id)
        if data.role is not Role.committee_staff:
            place = Place.of(person)
        await _require_manages_person(uow, kind=data.person_kind, person_id=person.id)
    ACCOUNTS.check(uow, place, field="person_id" if data.person_id else "town_id")
    taken = await uow.session.scalar(select(User.id).where(User.username == data.username))
    if taken is not None:
        raise Conflict(
            f"username {data.username} is taken",
            errors=[{"field": "username", "message": "taken"}],
        )
    user = User(
        **place.columns(),
        username=data.username,
        password_hash=await hashed(data.password, cost=uow.settings.password_hash_cost),
        role=data.role.value,
        person_kind=data.person_kind.value if data.person_kind else None,
        person_id=data.person_id,
        active=True,
        created_at=datetime.now(UTC),
    )
    if data.role is Role.committee_staff:
        user.committee_id = data.committee_id
    uow.session.add(user)
    await uow.session.flush()
    return user


async def list_users(
    uow: UnitOfWork, *, cursor: str | None, limit: int
) -> tuple[list[User], str | None]:
    """The accounts the caller manages (not those above them, such as the town operator's),
    for the roles that manage accounts."""
    ACCOUNTS.check_role(uow)
    query = select(User).where(uow.scope.managed(User))
    rows = await uow.session.scalars(keyset(query, User.id, cursor=cursor, limit=limit))
    return next_cursor(list(rows), limit)


async def _require_manages_person(
    uow: UnitOfWork, *, kind: PersonKind, person_id: uuid.UUID
) -> None:
    """Whoever opens an account sets its password and so can act as it: everything the
    account will see through the person's assignments must be the creator's to manage. The
    assignments and other accounts are read beyond the creator's scope (``UNSCOPED``), so
    that one outside it refuses instead of hiding; nothing read is shown."""
    held = await uow.session.execute(
        select(Assignment).where(Assignment.person_id == person_id), execution_options=UNSCOPED
    )
    places = []
    for assignment in held.scalars():
        places.append(Place.of(assignment))
        if assignment.grid_id is not None:
            covered = await uow.session.execute(
                select(GridBuilding).where(GridBuilding.grid_id == assignment.grid_id),
                execution_options=UNSCOPED,
            )
            places += [Place.of(member) for member in covered.scalars()]
    for place in places:
        ACCOUNTS.check(uow, place, field="person_id")
    other = await uow.session.scalar(
        select(User.id).where(
            User.person_kind == kind.value, User.person_id == person_id, User.active.is_(True)
        ),
        execution_options=UNSCOPED,
    )
    if other is not None:
        raise Conflict.on("person_id", "this person has an active account already")
