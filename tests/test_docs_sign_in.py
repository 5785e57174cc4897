"""Authorize in a service's own /docs: the token URL it advertises answers there."""

import httpx

from cordon.app import create_app
from cordon.platform import Platform
from cordon.services import named
from shared.settings import Settings

TOKEN = "/v1/auth/token"


def token_url(app_openapi: dict[str, object]) -> str:
    schemes = app_openapi["components"]["securitySchemes"]  # type: ignore[index]
    return str(schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"])


async def test_the_testing_service_on_its_own_port_advertises_the_registrys_token_url(
    settings: Settings,
) -> None:
    alone = Platform(settings, named(["testing"]))
    try:
        bare = create_app(alone, with_workers=False, migrate=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bare), base_url="http://testing.test"
        ) as client:
            advertised = token_url((await client.get("/openapi.json")).json())
            # Served here it would 404; unset, the docs say how to point it elsewhere.
            assert (await client.post(TOKEN, data={})).status_code == 404
            assert advertised == TOKEN
            description = (await client.get("/openapi.json")).json()["info"]["description"]
            assert "CORDON_TOKEN_URL" in description

        settings.token_url = "http://127.0.0.1:8001/v1/auth/token"
        pointed = create_app(alone, with_workers=False, migrate=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=pointed), base_url="http://testing.test"
        ) as client:
            assert token_url((await client.get("/openapi.json")).json()) == settings.token_url
    finally:
        await alone.close()


async def test_the_registry_lets_the_configured_docs_origins_sign_in(
    platform: Platform, settings: Settings
) -> None:
    from services.registry.demo import bootstrap_town

    await bootstrap_town(
        platform.runtime("registry"),
        town_code="T1",
        town_name="Riverside Street",
        username="operator",
        password="operator-pass-1",
    )
    settings.cors_origins = ["http://127.0.0.1:8002"]
    app = create_app(platform, with_workers=False, migrate=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://registry.test"
    ) as client:
        form = {"username": "operator", "password": "operator-pass-1"}
        docs = {"Origin": "http://127.0.0.1:8002"}
        signed = await client.post(TOKEN, data=form, headers=docs)
        assert signed.status_code == 200
        assert signed.headers["access-control-allow-origin"] == "http://127.0.0.1:8002"
        stranger = await client.post(TOKEN, data=form, headers={"Origin": "http://evil.test"})
        assert "access-control-allow-origin" not in stranger.headers
        # The registry serves the token itself: its own docs keep the relative URL.
        assert token_url((await client.get("/openapi.json")).json()) == TOKEN
