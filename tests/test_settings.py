"""The distributed mode never runs on a default secret or without its real parts."""

import pytest
from pydantic import ValidationError

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


def test_the_distributed_mode_names_what_is_missing() -> None:
    with pytest.raises(ValidationError, match="CORDON_BROKER_URL, CORDON_REDIS_URL"):
        Settings(mode=Mode.distributed, secret_key="s" * 40, database_url=REAL["database_url"])


def test_each_service_gets_its_own_schema() -> None:
    settings = Settings(mode=Mode.distributed, secret_key="s" * 40, schema_prefix="t_", **REAL)
    assert settings.service_schema("registry") == "t_registry"
    assert settings.service_database_url("registry") == REAL["database_url"]
