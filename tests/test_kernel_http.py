"""What every service's HTTP boundary does: problem details, authentication, correlation
ids, health, readiness and metrics (sign-in throttling: test_sign_in.py)."""

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from cordon.platform import Platform
from tests.conftest import Town


async def test_unknown_paths_and_missing_tokens_answer_problem_details(
    client: httpx.AsyncClient, town: Town
) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404

    anonymous = await client.get("/v1/residents")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "sign in" in anonymous.json()["detail"]

    forged = await client.get("/v1/residents", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401


async def test_the_correlation_id_comes_back(client: httpx.AsyncClient, town: Town) -> None:
    sent = await client.get("/v1/towns", headers={**town.operator, "X-Correlation-ID": "night-7"})
    assert sent.headers["x-correlation-id"] == "night-7"
    made = await client.get("/v1/towns", headers=town.operator)
    assert len(made.headers["x-correlation-id"]) == 32
    failing = await client.get("/v1/compounds/not-a-uuid", headers={"X-Correlation-ID": "c-9"})
    assert failing.json()["correlation_id"] == "c-9"


async def test_health_readiness_and_metrics(client: httpx.AsyncClient, town: Town) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database:registry": True,
        "database:testing": True,
        "database:logistics": True,
        "database:notify": True,
        "bus": True,
        "kv": True,
        "workers": True,
    }
    await client.post(
        "/v1/committees",
        json={"town_id": str(town.id), "code": "K1", "name": "East"},
        headers=town.operator,
    )
    metrics = (await client.get("/metrics")).text
    backlog = [
        line
        for line in metrics.splitlines()
        if line.startswith('cordon_outbox_backlog{service="registry"}')
    ]
    assert backlog and float(backlog[0].rsplit(" ", 1)[1]) >= 2
    assert 'cordon_http_request_seconds_count{method="POST",route="/v1/committees"' in metrics


async def test_unknown_users_and_wrong_passwords_look_the_same(
    client: httpx.AsyncClient, town: Town
) -> None:
    nobody = await client.post("/v1/auth/token", data={"username": "ghost", "password": "x"})
    wrong = await client.post("/v1/auth/token", data={"username": "operator", "password": "x"})
    assert nobody.status_code == wrong.status_code == 401
    assert nobody.json()["detail"] == wrong.json()["detail"]


def test_the_unknown_user_hash_costs_what_a_real_one_costs() -> None:
    from services.registry.auth.service import NO_USER_HASH
    from shared.auth import hash_password, verify_password

    # Same algorithm, version and cost parameters, so verifying against it takes as long.
    assert NO_USER_HASH.split("$")[:4] == hash_password("x").split("$")[:4]
    assert verify_password(NO_USER_HASH, "no such user")


@pytest.mark.parametrize("backend", ["services"], indirect=True)
async def test_a_request_after_the_database_dropped_its_connections_is_answered_again(
    client: httpx.AsyncClient, town: Town, platform: Platform
) -> None:
    """Connections are not pinged before use (a round trip on every request); when the
    database drops them (a restart), the request caught in flight gets a 503 to send again,
    never a 500, and the next one is served on a fresh connection."""
    assert platform.settings.database_url is not None
    assert (await client.get("/v1/compounds", headers=town.operator)).status_code == 200
    schema = platform.settings.service_schema("registry")
    engine = create_async_engine(platform.settings.database_url)
    async with engine.begin() as connection:
        dropped = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": f"cordon:{schema}"},
        )
    await engine.dispose()
    assert dropped >= 1

    answers = [(await client.get("/v1/compounds", headers=town.operator)) for _ in range(3)]

    assert [a.status_code for a in answers][-2:] == [200, 200]
    first = answers[0]
    assert first.status_code in (200, 503), first.text
    if first.status_code == 503:
        assert first.headers["retry-after"] == "1"
        assert first.headers["content-type"] == "application/problem+json"
