"""Who is calling: principals, their tokens and passwords. What they may see and change is
decided in :mod:`shared.authz` (re-exported here for the many modules that import it so)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


class InvalidTokenError(ValueError):
    pass


def read_token(token: str, *, secret: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
        return Principal(
            id=claims["sub"],
            username=claims["name"],
            role=Role(claims["role"]),
            scope=Scope.from_claims(claims["scope"]),
        )
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise InvalidTokenError(str(exc)) from exc


_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
