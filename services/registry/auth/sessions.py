"""Sessions of the registry's accounts.

A sign-in opens a session: a short access token (``access_token_minutes``) and a refresh
token. Refreshing spends the refresh token and answers a new pair in the same session, with
the role and scope the account has now; replaying a spent refresh token ends the session (it
was copied). Access tokens are ended in every service through the key-value store (see
``shared/sessions.py``): changes of role, scope, password or state raise the account's token
version; sign-out and replay mark the session ended.
"""

import hashlib
import secrets
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from services.registry.models import RefreshToken, User
from shared import sessions
from shared.auth import UNSCOPED, Principal, Role, Scope, issue_token
from shared.bulk import among
from shared.problems import Unauthorized
from shared.settings import Settings
from shared.uow import UnitOfWork

# Spent and ended refresh tokens are kept this long after their session's end (replays of
# them are answered as replays until then), then deleted by the worker.
KEEP_EXPIRED = timedelta(days=1)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class ReplayedRefreshToken(Unauthorized):
    """A spent refresh token came back: its session was ended in this unit of work, which
    the caller commits before answering."""


def _digest(refresh_token: str) -> str:
    # The token is 256 random bits: a plain SHA-256 can't be reversed or guessed, and the
    # lookup by digest stays an index probe (argon2 would cost a fifth of a second each).
    return hashlib.sha256(refresh_token.encode()).hexdigest()


async def open_session(uow: UnitOfWork, *, user: User, scope: Scope, settings: Settings) -> Tokens:
    """A new session for a user who just proved their password."""
    now = datetime.now(UTC)
    ends = now + timedelta(hours=settings.refresh_token_hours)
    family = uuid.uuid4()
    return await _issue(
        uow, user=user, scope=scope, family=family, ends=ends, now=now, settings=settings
    )


async def _issue(
    uow: UnitOfWork,
    *,
    user: User,
    scope: Scope,
    family: uuid.UUID,
    ends: datetime,
    now: datetime,
    settings: Settings,
) -> Tokens:
    refresh_token = secrets.token_urlsafe(32)
    uow.session.add(
        RefreshToken(
            family_id=family,
            user_id=user.id,
            token_hash=_digest(refresh_token),
            issued_at=now,
            expires_at=ends,
        )
    )
    await uow.session.flush()
    principal = Principal(
        id=str(user.id),
        username=user.username,
        role=Role(user.role),
        scope=scope,
        version=user.token_version,
        session=str(family),
        person_id=str(user.person_id) if user.person_id else None,
    )
    minutes = settings.access_token_minutes
    return Tokens(
        access_token=issue_token(principal, secret=settings.secret_key, minutes=minutes),
        expires_in=minutes * 60,
        refresh_token=refresh_token,
        refresh_expires_in=max(0, int((ends - now).total_seconds())),
    )


async def spend(uow: UnitOfWork, *, refresh_token: str) -> tuple[User, uuid.UUID, datetime]:
    """Spend a refresh token: the account, its session and the session's end. Only one of
    concurrent callers can spend a token (a conditional update); a replay ends the session."""
    now = datetime.now(UTC)
    digest = _digest(refresh_token)
    spent = (
        await uow.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == digest,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(RefreshToken.user_id, RefreshToken.family_id, RefreshToken.expires_at)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if spent is None:
        replayed = await uow.session.scalar(
            select(RefreshToken.family_id).where(
                RefreshToken.token_hash == digest, RefreshToken.used_at.is_not(None)
            )
        )
        if replayed is not None:
            await end_sessions(uow, families=[replayed])
            raise ReplayedRefreshToken(
                "this refresh token was used already, so it was copied: its session is ended; "
                "sign in again"
            )
        raise Unauthorized("the refresh token is unknown, ended or expired; sign in again")
    user = await uow.session.get(User, spent.user_id, execution_options=UNSCOPED)
    if user is None or not user.active:
        raise Unauthorized("this account is deactivated")
    return user, spent.family_id, spent.expires_at


async def reissue(
    uow: UnitOfWork,
    *,
    user: User,
    scope: Scope,
    family: uuid.UUID,
    ends: datetime,
    settings: Settings,
) -> Tokens:
    """A new pair in a session whose refresh token was just spent."""
    now = datetime.now(UTC)
    return await _issue(
        uow, user=user, scope=scope, family=family, ends=ends, now=now, settings=settings
    )


async def sign_out(uow: UnitOfWork, *, refresh_token: str) -> None:
    """End the refresh token's session, whatever state it is in (signing out twice is fine,
    and an unknown token tells the caller nothing)."""
    family = await uow.session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == _digest(refresh_token))
    )
    if family is not None:
        await end_sessions(uow, families=[family])


async def end_sessions(uow: UnitOfWork, *, families: Sequence[uuid.UUID]) -> None:
    """End these sessions: their refresh tokens here, their access tokens everywhere."""
    await uow.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id.in_(families), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    _publish_after_commit(uow, ended=[str(f) for f in families])


async def end_access(uow: UnitOfWork, users: Iterable[User], *, credentials: bool = False) -> None:
    """End every access token of these accounts, in every service, once the change commits.
    Their refresh tokens carry on (a refresh reads role and scope afresh) unless the change
    is to the credentials or the account's state (``credentials``): then they end too."""
    now = datetime.now(UTC)
    changed = list(users)
    for user in changed:
        user.token_version += 1
        user.sessions_ended_at = now
    await uow.session.flush()
    families: list[uuid.UUID] = []
    if credentials and changed:
        live = select(RefreshToken.family_id).where(
            RefreshToken.user_id.in_([u.id for u in changed]),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        families = list(set((await uow.session.scalars(live)).all()))
        if families:
            await end_sessions(uow, families=families)
    _publish_after_commit(uow, versions={str(u.id): u.token_version for u in changed})


async def end_access_of_people(uow: UnitOfWork, *, person_ids: Collection[uuid.UUID]) -> None:
    """These people's assignments changed: the scope in their accounts' tokens is stale.
    Every account of theirs is reached, in the caller's scope or not."""
    accounts = select(User).where(among(User.person_id, "people", dialect=uow.dialect))
    found = await uow.session.scalars(
        accounts.execution_options(**UNSCOPED), {"people": list(person_ids)}
    )
    await end_access(uow, found.all())


def _publish_after_commit(
    uow: UnitOfWork, *, versions: dict[str, int] | None = None, ended: Sequence[str] = ()
) -> None:
    async def publish() -> None:
        await sessions.publish(uow.kv, versions=versions or {}, ended=ended)

    uow.after_commit(publish)


async def republish(uow: UnitOfWork, now: datetime) -> None:
    """The ``sessions`` job of the registry's worker: write again every revocation that
    still matters, for a store that restarted empty or missed one; forget sessions long over."""
    since = now - timedelta(seconds=sessions.REMEMBER_SECONDS)
    changed = await uow.session.execute(
        select(User.id, User.token_version).where(User.sessions_ended_at > since)
    )
    ended = await uow.session.scalars(
        select(RefreshToken.family_id).where(RefreshToken.revoked_at > since).distinct()
    )
    await sessions.publish(
        uow.kv,
        versions={str(user_id): version for user_id, version in changed.all()},
        ended=[str(family) for family in ended.all()],
    )
    await uow.session.execute(
        delete(RefreshToken).where(RefreshToken.expires_at < now - KEEP_EXPIRED)
    )
