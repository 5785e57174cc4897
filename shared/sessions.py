"""Sessions as every service checks them, per request, in the key-value store.

An access token carries its account's token version (``ver``) and its session (``sid``). The
registry raises the account's version when its role, scope, password or state changes, and
marks a session ended when it is signed out or its refresh token is replayed; it writes both
to the key-value store, where every service reads them with one round trip per request.

A mark only needs to outlive the access tokens issued before it, so it expires after an access
token's lifetime (plus a margin for clocks). A missing version reads as 0: no token is older
than a version the store no longer holds. The registry's worker writes the marks of that
lifetime again every few seconds, so a store that restarted empty, or was away when the change
was made, learns them again.

Without the store no token passes (``KeyValueUnavailable``, answered 503 with Retry-After):
access tokens are how a dismissed volunteer would keep reading sealed residents' details, and
Redis is already a required part of the distributed mode (the embedded store is in memory).
"""

from collections.abc import Iterable, Mapping

from shared.auth import Principal
from shared.kv import KeyValue
from shared.problems import Unauthorized
from shared.settings import MAX_ACCESS_TOKEN_MINUTES

# How long a revocation is remembered: every token it ends has expired by then (tokens are
# checked on other machines, whose clocks may run a minute behind). A mark kept longer than
# needed refuses nothing that was still valid.
REMEMBER_SECONDS = MAX_ACCESS_TOKEN_MINUTES * 60 + 60


def version_key(user_id: object) -> str:
    return f"cordon:session:version:{user_id}"


def ended_key(session_id: object) -> str:
    return f"cordon:session:ended:{session_id}"


async def check(kv: KeyValue, principal: Principal) -> None:
    """Refuse a token whose account's version has moved on or whose session has ended."""
    keys = [version_key(principal.id)]
    if principal.session is not None:
        keys.append(ended_key(principal.session))
    version, *ended = await kv.numbers(keys)
    if principal.version < version:
        raise Unauthorized(
            "your account's role, scope, password or state changed: refresh or sign in again"
        )
    if any(ended):
        raise Unauthorized("this session has ended; sign in again")


async def publish(
    kv: KeyValue,
    *,
    versions: Mapping[str, int] = {},
    ended: Iterable[str] = (),
) -> None:
    """Tell every service: these accounts' versions, these sessions ended."""
    for user_id, version in versions.items():
        await kv.raise_to(version_key(user_id), version, ttl_seconds=REMEMBER_SECONDS)
    for session_id in ended:
        await kv.raise_to(ended_key(session_id), 1, ttl_seconds=REMEMBER_SECONDS)
