"""Sessions: short access tokens, rotating refresh tokens, and a token version on the user that
ends every access token at once, in every service, when the account's role, scope, password or
state changes; sign-out and the reuse of a spent refresh token end one session."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from cordon.platform import Platform
from shared.auth import Principal, Role, Scope, ScopeKind, issue_token
from shared.kv import RedisKeyValue
from tests.conftest import Town, skip_unless_reachable
from tests.proxy import TcpProxy
from tests.support import make_compound, post

PASSWORD = "leader-password-1"


async def tokens(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> Any:
    """The whole answer of a sign-in: access and refresh token."""
    response = await client.post(
        "/v1/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


def bearer(answer: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {answer['access_token']}"}


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


async def leader(client: httpx.AsyncClient, town: Town, *, code: str = "S1") -> dict[str, Any]:
    """A building leader (a volunteer assigned to a building) with an account, signed in."""
    compound = await make_compound(client, town.id, town.operator, code=code)
    volunteer = await post(
        client,
        "/v1/volunteers",
        {"compound_id": compound.id, "name": "楼组长", "kind": "service"},
        town.operator,
    )
    assignment = await post(
        client,
        "/v1/assignments",
        {
            "person_kind": "volunteer",
            "person_id": volunteer["id"],
            "building_id": compound.building_id,
        },
        town.operator,
    )
    user = await post(
        client,
        "/v1/users",
        {
            "username": f"leader-{code}",
            "password": PASSWORD,
            "role": "building_leader",
            "town_id": str(town.id),
            "person_kind": "volunteer",
            "person_id": volunteer["id"],
        },
        town.operator,
    )
    return {
        "compound": compound,
        "volunteer": volunteer,
        "assignment": assignment,
        "user": user,
        "tokens": await tokens(client, f"leader-{code}"),
    }


async def served_everywhere(client: httpx.AsyncClient, headers: dict[str, str]) -> list[int]:
    """The answers of one registry and one testing endpoint to this caller."""
    registry = await client.get("/v1/auth/me", headers=headers)
    testing = await client.get("/v1/rounds", headers=headers)
    return [registry.status_code, testing.status_code]


async def test_sign_in_answers_a_short_access_token_and_a_refresh_token(
    client: httpx.AsyncClient, town: Town
) -> None:
    first = await tokens(client, "operator", "operator-pass-1")
    assert 0 < first["expires_in"] <= 15 * 60
    assert first["refresh_token"] and first["refresh_expires_in"] > first["expires_in"]

    renewed = await refresh(client, first["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    second = renewed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert await served_everywhere(client, bearer(second)) == [200, 200]


async def test_the_token_endpoint_answers_the_refresh_grant_too(
    client: httpx.AsyncClient, town: Town
) -> None:
    first = await tokens(client, "operator", "operator-pass-1")
    renewed = await client.post(
        "/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert renewed.status_code == 200, renewed.text
    assert (await client.get("/v1/auth/me", headers=bearer(renewed.json()))).status_code == 200


async def test_a_refresh_token_works_once_and_its_reuse_ends_the_session(
    client: httpx.AsyncClient, town: Town
) -> None:
    first = await tokens(client, "operator", "operator-pass-1")
    other_session = await tokens(client, "operator", "operator-pass-1")
    second = (await refresh(client, first["refresh_token"])).json()

    # Someone replays the spent token (stolen from a phone, say): the whole session ends.
    replayed = await refresh(client, first["refresh_token"])
    assert replayed.status_code == 401
    assert replayed.headers["content-type"] == "application/problem+json"
    assert (await refresh(client, second["refresh_token"])).status_code == 401
    assert await served_everywhere(client, bearer(second)) == [401, 401]
    # Another session of the same account is not touched.
    assert await served_everywhere(client, bearer(other_session)) == [200, 200]
    assert (await refresh(client, other_session["refresh_token"])).status_code == 200


async def test_an_unknown_refresh_token_is_refused(client: httpx.AsyncClient, town: Town) -> None:
    answer = await refresh(client, "not-a-refresh-token")
    assert answer.status_code == 401
    assert answer.json()["status"] == 401


async def test_sign_out_ends_the_refresh_token_and_the_access_token_at_once(
    client: httpx.AsyncClient, town: Town
) -> None:
    session = await tokens(client, "operator", "operator-pass-1")
    other_session = await tokens(client, "operator", "operator-pass-1")
    out = await client.post("/v1/auth/sign-out", json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 204
    assert (await refresh(client, session["refresh_token"])).status_code == 401
    assert await served_everywhere(client, bearer(session)) == [401, 401]
    assert await served_everywhere(client, bearer(other_session)) == [200, 200]


async def test_ending_an_assignment_ends_the_leaders_access_at_once_in_every_service(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await leader(client, town)
    headers = bearer(mine["tokens"])
    assert await served_everywhere(client, headers) == [200, 200]
    me = (await client.get("/v1/auth/me", headers=headers)).json()
    assert mine["compound"].building_id in me["scope"]["buildings"]

    ended = await client.delete(
        f"/v1/assignments/{mine['assignment']['id']}", headers=town.operator
    )
    assert ended.status_code == 204

    assert await served_everywhere(client, headers) == [401, 401]
    # The refresh token carries on, with the scope the leader has now.
    renewed = await refresh(client, mine["tokens"]["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    now = (await client.get("/v1/auth/me", headers=bearer(renewed.json()))).json()
    assert mine["compound"].building_id not in now["scope"]["buildings"]


async def test_a_new_assignment_ends_the_access_tokens_and_the_refresh_widens_the_scope(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await leader(client, town)
    elsewhere = await make_compound(client, town.id, town.operator, code="S2")
    await post(
        client,
        "/v1/assignments",
        {
            "person_kind": "volunteer",
            "person_id": mine["volunteer"]["id"],
            "building_id": elsewhere.building_id,
        },
        town.operator,
    )
    assert await served_everywhere(client, bearer(mine["tokens"])) == [401, 401]
    renewed = (await refresh(client, mine["tokens"]["refresh_token"])).json()
    now = (await client.get("/v1/auth/me", headers=bearer(renewed))).json()
    assert elsewhere.building_id in now["scope"]["buildings"]


async def test_a_role_change_ends_the_access_tokens_and_the_refresh_carries_the_new_role(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await leader(client, town)
    changed = await client.patch(
        f"/v1/users/{mine['user']['id']}", json={"role": "volunteer"}, headers=town.operator
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "volunteer"
    assert await served_everywhere(client, bearer(mine["tokens"])) == [401, 401]
    renewed = (await refresh(client, mine["tokens"]["refresh_token"])).json()
    assert (await client.get("/v1/auth/me", headers=bearer(renewed))).json()["role"] == "volunteer"


async def test_a_password_reset_ends_every_session_of_the_account(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await leader(client, town)
    reset = await client.patch(
        f"/v1/users/{mine['user']['id']}",
        json={"password": "a-new-password-2"},
        headers=town.operator,
    )
    assert reset.status_code == 200, reset.text
    assert await served_everywhere(client, bearer(mine["tokens"])) == [401, 401]
    assert (await refresh(client, mine["tokens"]["refresh_token"])).status_code == 401
    assert (await tokens(client, "leader-S1", "a-new-password-2"))["access_token"]


async def test_changing_ones_own_password_ends_every_session_and_needs_the_current_one(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await leader(client, town)
    headers = bearer(mine["tokens"])
    wrong = await client.post(
        "/v1/auth/password",
        json={"current_password": "not-my-password", "new_password": "a-new-password-2"},
        headers=headers,
    )
    assert wrong.status_code == 403
    changed = await client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a-new-password-2"},
        headers=headers,
    )
    assert changed.status_code == 204, changed.text
    assert await served_everywhere(client, headers) == [401, 401]
    assert (await refresh(client, mine["tokens"]["refresh_token"])).status_code == 401
    assert (await tokens(client, "leader-S1", "a-new-password-2"))["access_token"]


async def test_deactivating_an_account_ends_its_sessions_until_it_is_reactivated(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await leader(client, town)
    user_id = mine["user"]["id"]
    off = await client.post(f"/v1/users/{user_id}/deactivate", headers=town.operator)
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    assert await served_everywhere(client, bearer(mine["tokens"])) == [401, 401]
    assert (await refresh(client, mine["tokens"]["refresh_token"])).status_code == 401
    refused = await client.post(
        "/v1/auth/token", data={"username": "leader-S1", "password": PASSWORD}
    )
    assert refused.status_code == 401

    on = await client.post(f"/v1/users/{user_id}/reactivate", headers=town.operator)
    assert on.status_code == 200 and on.json()["active"] is True
    assert await served_everywhere(client, bearer(await tokens(client, "leader-S1"))) == [200, 200]


async def test_only_who_may_open_such_an_account_may_deactivate_it(
    client: httpx.AsyncClient, town: Town
) -> None:
    mine = await leader(client, town)
    own = await client.post(
        f"/v1/users/{mine['user']['id']}/deactivate", headers=bearer(mine["tokens"])
    )
    assert own.status_code == 403
    missing = await client.post(
        "/v1/users/00000000-0000-0000-0000-000000000000/deactivate", headers=town.operator
    )
    assert missing.status_code == 404


async def test_a_revocation_the_store_lost_is_published_again_by_the_registry_worker(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    mine = await leader(client, town)
    headers = bearer(mine["tokens"])
    await client.post(f"/v1/users/{mine['user']['id']}/deactivate", headers=town.operator)
    assert await served_everywhere(client, headers) == [401, 401]

    # Redis restarted empty (or was down when the account was deactivated).
    from shared import sessions

    await platform.kv.reset(sessions.version_key(mine["user"]["id"]))
    registry = platform.runtime("registry")
    [job] = [j for j in registry.spec.periodic if j.name == "sessions"]
    await registry.tick(job)
    assert await served_everywhere(client, headers) == [401, 401]


@asynccontextmanager
async def store_behind_a_proxy(platform: Platform) -> AsyncIterator[TcpProxy]:
    """Every service's key-value store is the real Redis through a proxy the test can cut."""
    skip_unless_reachable("Redis")
    proxy = TcpProxy(target_host="127.0.0.1", target_port=6379)
    await proxy.start()
    proxied = RedisKeyValue(f"redis://127.0.0.1:{proxy.port}/0", namespace="sessions-test:")
    saved = {name: runtime.kv for name, runtime in platform.runtimes.items()}
    try:
        for runtime in platform.runtimes.values():
            runtime.kv = proxied
        yield proxy
    finally:
        for name, kv in saved.items():
            platform.runtimes[name].kv = kv
        await proxied.close()
        await proxy.close()


@pytest.mark.parametrize("path", ["/v1/auth/me", "/v1/rounds"])
async def test_without_the_key_value_store_no_token_passes(
    client: httpx.AsyncClient, town: Town, platform: Platform, path: str
) -> None:
    """Fail closed: a revoked token must not pass because Redis is away; callers are told to
    try again shortly (503 with Retry-After), not to sign in again."""
    async with store_behind_a_proxy(platform) as proxy:
        assert (await client.get(path, headers=town.operator)).status_code == 200
        proxy.cut()
        answer = await client.get(path, headers=town.operator)
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert int(answer.headers["retry-after"]) > 0
        proxy.restore()
        assert (await client.get(path, headers=town.operator)).status_code == 200


async def test_without_the_key_value_store_nobody_signs_in_unthrottled(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    async with store_behind_a_proxy(platform) as proxy:
        proxy.cut()
        answer = await client.post(
            "/v1/auth/token", data={"username": "operator", "password": "operator-pass-1"}
        )
        assert answer.status_code == 503
        assert int(answer.headers["retry-after"]) > 0


async def test_an_access_token_accepted_before_is_refused_once_it_expires(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """A token's signature is verified once per process; its expiry still holds every time."""
    operator = Principal(
        id="brief",
        username="brief",
        role=Role.town_operator,
        scope=Scope.of(ScopeKind.towns, towns=[town.id]),
    )
    # Five seconds: both reads pass before it expires also on a loaded machine.
    token = issue_token(operator, secret=platform.settings.secret_key, minutes=5 / 60)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/rounds", headers=headers)).status_code == 200
    assert (await client.get("/v1/rounds", headers=headers)).status_code == 200
    await asyncio.sleep(5.2)
    expired = await client.get("/v1/rounds", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
