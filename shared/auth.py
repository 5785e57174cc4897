"""Who is calling: principals, their tokens and passwords. What they may see and change is
decided in :mod:`shared.authz` (re-exported here for the many modules that import it so)."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.authz import (
    SCOPE_KEY,
    UNSCOPED,
    Role,
    Scope,
    Scoped,
    ScopeKind,
    UnscopedQueryError,
)

__all__ = [
    "SCOPE_KEY",
    "UNSCOPED",
    "InvalidTokenError",
    "Principal",
    "Role",
    "Scope",
    "ScopeKind",
    "Scoped",
    "UnscopedQueryError",
    "hash_password",
    "issue_token",
    "read_token",
    "verify_password",
]


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
    # The staff member or volunteer the account belongs to (``person_id`` of the account):
    # what "their own" errands are.
    person_id: str | None = None

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
        "pid": principal.person_id,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


class InvalidTokenError(ValueError):
    pass


# A token's signature is checked once per process, not on every request it comes with: the
# same string under the same secret verifies the same way. Its expiry is checked on each use
# (and the account's version and session per request, in ``shared.sessions``).
_VERIFIED_MAX = 4096
_verified: dict[tuple[str, str], tuple[Principal, float]] = {}


def read_token(token: str, *, secret: str) -> Principal:
    key = (token, secret)
    known = _verified.get(key)
    if known is None:
        known = _decode(token, secret=secret)
        if len(_verified) >= _VERIFIED_MAX:
            del _verified[next(iter(_verified))]
        _verified[key] = known
    principal, expires = known
    if time.time() >= expires:
        _verified.pop(key, None)
        raise InvalidTokenError("Signature has expired")
    return principal


def _decode(token: str, *, secret: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "ver"]}
        )
        principal = Principal(
            id=claims["sub"],
            username=claims["name"],
            role=Role(claims["role"]),
            scope=Scope.from_claims(claims["scope"]),
            version=int(claims["ver"]),
            session=claims.get("sid"),
            person_id=claims.get("pid"),
        )
        return principal, float(claims["exp"])
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise InvalidTokenError(str(exc)) from exc


# New hashes at the settings' cost (``password_hash_cost``); any hash verifies at the cost
# written in it.
_HASHERS = {
    "standard": PasswordHasher(),
    "least": PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
}
# argon2 holds a core and 64 MB for a fifth of a second: run it beside the event loop (the
# C code releases the GIL), at most two at a time so a burst of sign-ins queues here instead
# of taking every core and a gigabyte from the requests being served.
_hashing = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


def hash_password(password: str, *, cost: str = "standard") -> str:
    return _HASHERS[cost].hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHERS["standard"].verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hashed(password: str, *, cost: str) -> str:
    """:func:`hash_password` off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hashing, partial(hash_password, password, cost=cost))


async def verified(password_hash: str, password: str) -> bool:
    """:func:`verify_password` off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hashing, verify_password, password_hash, password)
