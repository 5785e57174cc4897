"""The `cordon` command as a script runs it: no terminal to prompt on."""

import asyncio
import json
import re
import sys
from pathlib import Path

import httpx

from cordon.platform import Platform
from shared.settings import Settings
from tests.conftest import sign_in
from tests.test_distributed_processes import cordon_env

CORDON = str(Path(sys.executable).parent / "cordon")


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that points a `cordon` process at the test's databases and bus."""
    values = {
        "CORDON_DATA_DIR": str(settings.data_dir),
        "CORDON_SCHEMA_PREFIX": settings.schema_prefix,
        "CORDON_SECRET_KEY": settings.secret_key,
        "CORDON_EXCHANGE": settings.exchange,
        # Queue arguments must match those the test's platform declared.
        "CORDON_RETRY_BASE_SECONDS": str(settings.retry_base_seconds),
        "CORDON_DELIVERY_LIMIT": str(settings.delivery_limit),
        **extra,
    }
    for name in ("database_url", "broker_url", "redis_url"):
        if getattr(settings, name):
            values[f"CORDON_{name.upper()}"] = str(getattr(settings, name))
    return cordon_env(**values)


async def cordon(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run `cordon` as a script would: stdin is no terminal."""
    process = await asyncio.create_subprocess_exec(
        CORDON,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return int(process.returncode or 0), output.decode()


def town(n: int, username: str) -> list[str]:
    return ["bootstrap", "--town-code", f"T{n}", "--town-name", f"Town {n}", "--username", username]


async def test_bootstrap_takes_the_password_from_an_option_the_environment_or_makes_one(
    platform: Platform, client: httpx.AsyncClient, settings: Settings
) -> None:
    env = env_of(settings)
    code, output = await cordon(*town(1, "op1"), "--password", "option-pass-1", env=env)
    assert code == 0, output
    await sign_in(client, "op1", "option-pass-1")

    from_env = env_of(settings, CORDON_BOOTSTRAP_PASSWORD="environment-pass-2")
    code, output = await cordon(*town(2, "op2"), env=from_env)
    assert code == 0, output
    await sign_in(client, "op2", "environment-pass-2")

    code, output = await cordon(*town(3, "op3"), env=env)
    assert code == 0, output
    made = re.search(r"password: (\S+)", output)
    assert made is not None, output
    await sign_in(client, "op3", made.group(1))


async def test_a_terminal_reads_plain_log_lines_and_a_collector_gets_json(
    platform: Platform, settings: Settings
) -> None:
    env = env_of(settings)
    env.pop("CORDON_LOG_JSON", None)
    code, output = await cordon("migrate", env=env)
    assert code == 0, output
    logged = [line for line in output.splitlines() if "alembic" in line]
    assert logged and not any(line.startswith("{") for line in logged), output

    code, output = await cordon("migrate", env={**env, "CORDON_LOG_JSON": "true"})
    assert code == 0, output
    logged = [line for line in output.splitlines() if "alembic" in line]
    assert logged and all(json.loads(line)["logger"].startswith("alembic") for line in logged)


def test_logs_are_json_in_the_distributed_mode_unless_told_otherwise() -> None:
    secret = {"secret_key": "s" * 40, "database_url": "postgresql+asyncpg://x/y"}
    real = {**secret, "broker_url": "amqp://x", "redis_url": "redis://x"}
    assert Settings(_env_file=None).json_logs is False
    assert Settings(_env_file=None, mode="distributed", **real).json_logs is True
    assert Settings(_env_file=None, mode="distributed", log_json=False, **real).json_logs is False
    assert Settings(_env_file=None, log_json=True).json_logs is True
