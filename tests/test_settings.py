"""The distributed mode never runs on a default secret or without its real parts."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.auth import hash_password, verify_password
from shared.settings import DEFAULT_SECRET, Mode, Settings

REAL = {
    "database_url": "postgresql+asyncpg://db/cordon",
    "broker_url": "amqp://mq/",
    "redis_url": "redis://cache/0",
}


def test_the_embedded_mode_starts_with_nothing_configured() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mode is Mode.embedded
    assert settings.service_database_url("registry").startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize("secret", [DEFAULT_SECRET, "short-secret"])
def test_the_distributed_mode_refuses_a_default_or_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="CORDON_SECRET_KEY"):
        Settings(mode=Mode.distributed, secret_key=secret, **REAL)


def test_the_distributed_mode_hashes_passwords_at_the_standard_cost() -> None:
    with pytest.raises(ValidationError, match="standard cost"):
        Settings(mode=Mode.distributed, secret_key="s" * 40, password_hash_cost="least", **REAL)
    assert Settings(mode=Mode.distributed, secret_key="s" * 40, **REAL).password_hash_cost == (
        "standard"
    )


def test_a_password_hashed_at_the_least_cost_verifies_and_refuses_as_any_other() -> None:
    cheap = hash_password("night-shift-7", cost="least")
    assert cheap.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert verify_password(cheap, "night-shift-7")
    assert not verify_password(cheap, "night-shift-8")


def test_the_distributed_mode_names_what_is_missing() -> None:
    with pytest.raises(ValidationError, match="CORDON_BROKER_URL, CORDON_REDIS_URL"):
        Settings(mode=Mode.distributed, secret_key="s" * 40, database_url=REAL["database_url"])


def test_each_service_gets_its_own_schema() -> None:
    settings = Settings(mode=Mode.distributed, secret_key="s" * 40, schema_prefix="t_", **REAL)
    assert settings.service_schema("registry") == "t_registry"
    assert settings.service_database_url("registry") == REAL["database_url"]


@pytest.mark.parametrize("command", ["run", "serve"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "cordon.example.org"])
def test_the_default_secret_is_refused_when_the_server_listens_beyond_this_machine(
    command: str, host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who reads the source can sign tokens with the embedded default secret: fine on
    127.0.0.1, a town's data open to its whole network on 0.0.0.0."""
    from typer.testing import CliRunner

    from cordon.cli import app
    from shared.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CORDON_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, [command, "--host", host])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("cordon: refusing to start")
    assert "CORDON_SECRET_KEY" in line and host in line
    assert not (tmp_path / "data").exists(), "it refused only after building things"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_the_default_secret_serves_this_machine(host: str) -> None:
    from cordon.cli import refusal_to_listen

    assert refusal_to_listen(Settings(_env_file=None), host) is None  # type: ignore[call-arg]


def test_a_real_secret_may_listen_everywhere() -> None:
    from cordon.cli import refusal_to_listen

    settings = Settings(_env_file=None, secret_key="s" * 40)  # type: ignore[call-arg]
    assert refusal_to_listen(settings, "0.0.0.0") is None


def test_the_town_clock_is_a_known_time_zone() -> None:
    assert Settings(time_zone="Asia/Urumqi").zone.key == "Asia/Urumqi"
    with pytest.raises(ValidationError, match="time zone"):
        Settings(time_zone="Beijing")
