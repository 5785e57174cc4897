"""`cordon run` prints a demo login per role, and each one signs in as that role."""

import asyncio
import logging
import re

import httpx
import pytest
from typer.testing import CliRunner

from shared.settings import Settings
from tests.conftest import sign_in

ROLES = {"town_operator", "committee_staff", "grid_leader", "building_leader", "volunteer"}
LOGIN = re.compile(r"^\s+(?P<role>[a-z_]+):\s+(?P<username>\S+) / (?P<password>\S+)\s*$")


def _logins(printed: str) -> list[dict[str, str]]:
    return [m.groupdict() for line in printed.splitlines() if (m := LOGIN.match(line))]


def _environment(settings: Settings) -> dict[str, str]:
    """The test's settings as the environment a `cordon` process reads."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"CORDON_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    return env


def _cordon_run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """What `cordon run` prints before it serves (the server itself is not started)."""
    from cordon import cli
    from shared.settings import get_settings

    monkeypatch.setattr(cli.uvicorn, "run", lambda *args, **kwargs: None)
    root = logging.getLogger()
    handlers = root.handlers[:]
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli.app, ["run", "--demo-size", "100"], env=_environment(settings)
        )
    finally:
        get_settings.cache_clear()
        root.handlers[:] = handlers
    assert result.exit_code == 0, result.output
    return result.output


async def test_every_demo_login_cordon_run_prints_signs_in_as_its_role(
    settings: Settings, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = await asyncio.to_thread(_cordon_run, settings, monkeypatch)
    logins = _logins(printed)
    assert {login["role"] for login in logins} == ROLES, printed

    for login in logins:
        headers = await sign_in(client, login["username"], login["password"])
        me = await client.get("/v1/auth/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["role"] == login["role"]
        # The console shows times in the town office's clock, which it learns here.
        assert me.json()["time_zone"] == settings.time_zone
        if login["role"] != "town_operator":
            assert me.json()["scope"]["compounds"] or me.json()["scope"]["buildings"]

    # The town exists on the next start: the logins are printed again all the same.
    again = await asyncio.to_thread(_cordon_run, settings, monkeypatch)
    assert _logins(again) == logins
