"""Signing in: failures throttle the (username, address) pair, an address across usernames
(password spraying) and, more softly, a username from everywhere; argon2 runs off the event
loop so a burst of sign-ins does not stall everybody else's requests."""

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from cordon.app import create_app
from cordon.platform import Platform
from tests.conftest import Town

RIGHT = "operator-pass-1"


@asynccontextmanager
async def from_address(platform: Platform, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from ``address`` (as the gateway reports it)."""
    app = create_app(platform, with_workers=False, migrate=False)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://cordon.test") as http:
        yield http


async def attempt(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/token", data={"username": username, "password": password})


async def test_failing_from_one_address_does_not_lock_the_user_out_from_another(
    platform: Platform, town: Town
) -> None:
    limit = platform.settings.login_failures_per_pair
    async with from_address(platform, "203.0.113.7") as attacker:
        for _ in range(limit):
            assert (await attempt(attacker, "operator", "guess")).status_code == 401
        blocked = await attempt(attacker, "operator", RIGHT)
        assert blocked.status_code == 429
        assert blocked.headers["content-type"] == "application/problem+json"
        assert 0 < int(blocked.headers["retry-after"]) <= platform.settings.login_window_seconds
    async with from_address(platform, "198.51.100.20") as owner:
        assert (await attempt(owner, "operator", RIGHT)).status_code == 200


async def test_spraying_one_password_across_usernames_is_throttled_per_address(
    platform: Platform, town: Town
) -> None:
    platform.settings.login_failures_per_address = 6
    async with from_address(platform, "203.0.113.8") as sprayer:
        for n in range(6):
            assert (await attempt(sprayer, f"user{n}", "Spring2022!")).status_code == 401
        blocked = await attempt(sprayer, "operator", "Spring2022!")
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
    async with from_address(platform, "198.51.100.21") as owner:
        assert (await attempt(owner, "operator", RIGHT)).status_code == 200


async def test_a_username_failing_from_many_addresses_is_throttled_but_not_where_it_signed_in(
    platform: Platform, town: Town
) -> None:
    platform.settings.login_failures_per_username = 4
    async with from_address(platform, "198.51.100.22") as desk:
        assert (await attempt(desk, "operator", RIGHT)).status_code == 200
    for n in range(4):
        async with from_address(platform, f"203.0.113.{20 + n}") as botnet:
            assert (await attempt(botnet, "operator", "guess")).status_code == 401
    async with from_address(platform, "192.0.2.50") as stranger:
        assert (await attempt(stranger, "operator", RIGHT)).status_code == 429
    # The address the operator signed in from before still lets them in.
    async with from_address(platform, "198.51.100.22") as desk:
        assert (await attempt(desk, "operator", RIGHT)).status_code == 200


async def test_a_successful_sign_in_forgets_the_pairs_failures(
    platform: Platform, town: Town
) -> None:
    limit = platform.settings.login_failures_per_pair
    async with from_address(platform, "198.51.100.23") as desk:
        for _ in range(limit - 1):
            assert (await attempt(desk, "operator", "typo")).status_code == 401
        assert (await attempt(desk, "operator", RIGHT)).status_code == 200
        for _ in range(limit - 1):
            assert (await attempt(desk, "operator", "typo")).status_code == 401
        assert (await attempt(desk, "operator", RIGHT)).status_code == 200


async def test_other_requests_are_served_while_a_sign_in_verifies_its_password(
    client: httpx.AsyncClient, town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verification takes a fifth of a second of CPU or more; on the event loop, every
    request behind a burst of sign-ins waited for all of them. Here the verification waits
    (up to 10 s) for a health check to be answered before it goes on: only a verification
    beside the loop lets that happen."""
    import argon2

    verifying, answered = threading.Event(), threading.Event()
    served_meanwhile: list[bool] = []
    real_verify = argon2.PasswordHasher.verify

    def verify_once_a_request_was_served(self: argon2.PasswordHasher, *args: Any) -> Any:
        verifying.set()
        served_meanwhile.append(answered.wait(timeout=10))
        return real_verify(self, *args)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", verify_once_a_request_was_served)
    signing_in = asyncio.create_task(attempt(client, "operator", RIGHT))
    assert await asyncio.to_thread(verifying.wait, 30)
    assert (await client.get("/healthz")).status_code == 200
    answered.set()
    assert (await signing_in).status_code == 200
    assert served_meanwhile == [True], "the health check waited for the verification"


async def test_guessing_the_current_password_with_a_stolen_token_is_throttled_as_documented(
    platform: Platform, town: Town
) -> None:
    """Changing your own password checks the current one: a token left on a shared phone
    cannot be used to try passwords without end, and the 429 is one the API documents."""
    limit = platform.settings.login_failures_per_pair
    async with from_address(platform, "203.0.113.9") as thief:
        for _ in range(limit):
            body = {"current_password": "guess", "new_password": "a-new-password-1"}
            wrong = await thief.post("/v1/auth/password", json=body, headers=town.operator)
            assert wrong.status_code in (401, 403, 422), wrong.text
        body = {"current_password": RIGHT, "new_password": "a-new-password-1"}
        blocked = await thief.post("/v1/auth/password", json=body, headers=town.operator)
        assert blocked.status_code == 429, blocked.text
        assert int(blocked.headers["retry-after"]) > 0
        spec = (await thief.get("/openapi.json")).json()
        answers = spec["paths"]["/v1/auth/password"]["post"]["responses"]
        assert "429" in answers
        assert "problem" in str(answers["429"]["content"])
