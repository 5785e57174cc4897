"""Changing an account: role, committee, password, active or not. Each change ends the
account's access tokens in every service at once (``sessions.end_access``); a new password or
a deactivation ends its refresh tokens too."""

import uuid

from services.registry.auth import schemas, sessions
from services.registry.auth.service import ACCOUNTS, GRANTS
from services.registry.auth.throttle import Attempt
from services.registry.models import Committee, User
from shared.auth import UNSCOPED, Role, ScopeKind, hashed, verified
from shared.authz import FIELD, Place, policy
from shared.problems import Forbidden, Invalid, NotFound
from shared.settings import Settings
from shared.uow import UnitOfWork


async def _manageable(uow: UnitOfWork, user_id: uuid.UUID, *also: Role) -> User:
    """The account, if the caller may manage accounts of its role (and of ``also``): who may
    open an account may change it. Nobody manages their own here."""
    user = await uow.get(User, user_id, what="account")
    ACCOUNTS.check(uow, Place.of(user))
    if str(user.id) == uow.principal.id:
        raise Forbidden(
            "you may not change your own account; change your password at /v1/auth/password"
        )
    if uow.scope.kind is not ScopeKind.system:
        granted = GRANTS.get(uow.principal.role, frozenset())
        for role in (Role(user.role), *also):
            if role not in granted:
                raise Forbidden(
                    f"a {uow.principal.role.value} may not manage {role.value} accounts"
                )
    return user


async def update_user(uow: UnitOfWork, *, user_id: uuid.UUID, data: schemas.UserUpdate) -> User:
    user = await _manageable(uow, user_id, *([data.role] if data.role else []))
    before = (user.role, user.committee_id)
    if data.committee_id is not None:
        await uow.get(Committee, data.committee_id, what="committee", field="committee_id")
        user.committee_id = data.committee_id
    if data.role is not None:
        user.role = data.role.value
    if user.role == Role.committee_staff.value and user.committee_id is None:
        raise Invalid.on("committee_id", "committee staff need a committee")
    if data.password is not None:
        user.password_hash = await hashed(data.password, cost=uow.settings.password_hash_cost)
    if data.password is not None or (user.role, user.committee_id) != before:
        await sessions.end_access(uow, [user], credentials=data.password is not None)
    return user


async def set_active(uow: UnitOfWork, *, user_id: uuid.UUID, active: bool) -> User:
    user = await _manageable(uow, user_id)
    if user.active and not active:
        user.active = False
        await sessions.end_access(uow, [user], credentials=True)
    user.active = active
    return user


# Everyone changes their own password (the current one proves it is them).
OWN_PASSWORD = policy("their own password", "change", *FIELD)


async def change_own_password(
    uow: UnitOfWork, *, data: schemas.PasswordChange, address: str, settings: Settings
) -> None:
    """The caller's own new password, given the current one (throttled as sign-ins are: a
    stolen access token must not become a way to guess the password)."""
    OWN_PASSWORD.check_role(uow)
    try:
        account_id = uuid.UUID(uow.principal.id)
    except ValueError:
        # A service account's token names no account row.
        raise NotFound("this token belongs to no account") from None
    user = await uow.session.get(User, account_id, execution_options=UNSCOPED)
    if user is None:
        raise NotFound("this token belongs to no account")
    attempt = Attempt(username=user.username, address=address, settings=settings)
    await attempt.admit(uow.kv)
    if not await verified(user.password_hash, data.current_password):
        await attempt.failed(uow.kv)
        raise Forbidden.on("current_password", "that is not your current password")
    user.password_hash = await hashed(data.new_password, cost=uow.settings.password_hash_cost)
    await sessions.end_access(uow, [user], credentials=True)
