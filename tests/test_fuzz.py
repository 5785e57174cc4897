"""schemathesis against the OpenAPI every service serves, on a running system with a small
demo town, signed in as its town operator: no answer may be a 5xx, and every answer must be
one its operation documents (status, content type and body).

Ids of the demo town's places, people and a round are fed to the fuzzer (path, query and
body fields by name) most of the time, so it reaches the services' code rather than 404s.
``CORDON_FUZZ_EXAMPLES`` sets the examples per operation and ``CORDON_FUZZ_PHASES`` the
phases: a few examples and no coverage phase by default, to keep ``make test`` to about a
minute; ``CORDON_FUZZ_PHASES=examples,coverage,fuzzing,stateful`` also tries the boundaries of
every field (a few minutes)."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cordon.app import create_app
from cordon.platform import Platform
from cordon.services import ALL
from services.registry.demo import DEMO_PASSWORD
from shared.settings import Settings
from tests.conftest import drop_everything, queue_names

EXAMPLES = int(os.environ.get("CORDON_FUZZ_EXAMPLES", "3"))
PHASES = os.environ.get("CORDON_FUZZ_PHASES", "examples,fuzzing")
BIN = Path(sys.executable).parent
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)
# What the fuzzer is given for a field of this name: (dictionary, list endpoint).
KNOWN = {
    "town_id": "/v1/towns",
    "committee_id": "/v1/committees",
    "compound_id": "/v1/compounds",
    "building_id": "/v1/buildings",
    "unit_id": "/v1/units",
    "household_id": "/v1/households",
    "resident_id": "/v1/residents",
    "round_id": "/v1/rounds",
}


@dataclass
class Served:
    base_url: str
    headers: dict[str, str]
    ids: dict[str, list[str]]


def _environment(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "CORDON_DATA_DIR": str(settings.data_dir),
        "CORDON_SCHEMA_PREFIX": settings.schema_prefix,
        "CORDON_SECRET_KEY": settings.secret_key,
        "CORDON_EXCHANGE": settings.exchange,
        "CORDON_LOG_JSON": "false",
    }
    for name in ("database_url", "broker_url", "redis_url"):
        value = getattr(settings, name)
        if value:
            env[f"CORDON_{name.upper()}"] = value
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server stopped:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the server did not get ready:\n{log.read_text()[-3000:]}")


def _known_ids(base_url: str, headers: dict[str, str]) -> dict[str, list[str]]:
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        town = http.get("/v1/towns").json()[0]["id"]
        body = {
            "town_id": town,
            "name": "Fuzzed round",
            "scope": {"kind": "town"},
            "starts_at": "2022-04-02T05:00:00+08:00",
            "ends_at": "2022-04-02T11:00:00+08:00",
        }
        # The demo town's events may still be on their way to the testing directory: the
        # round is refused with 503 and Retry-After until they arrive, as for any client.
        deadline = time.monotonic() + 180
        round_ = http.post("/v1/rounds", json=body)
        while round_.status_code == 503 and time.monotonic() < deadline:
            time.sleep(float(round_.headers.get("retry-after", "1")))
            round_ = http.post("/v1/rounds", json=body)
        assert round_.status_code == 201, round_.text
        ids = {}
        for field, path in KNOWN.items():
            answer = http.get(path, params={"limit": 20} if path != "/v1/towns" else None).json()
            items = answer["items"] if isinstance(answer, dict) else answer
            ids[field] = [item["id"] for item in items[:20]]
            assert ids[field], f"the demo town has nothing at {path}"
    return ids


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[Served]:
    """The whole system as ``cordon serve`` runs it, with a demo town of 100 residents."""
    env = _environment(settings)
    built = subprocess.run(
        [BIN / "cordon", "demo", "--size", "100"], env=env, capture_output=True, timeout=300
    )
    assert built.returncode == 0, built.stderr.decode()[-3000:]
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [BIN / "cordon", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process, log)
        signed_in = httpx.post(
            f"{base_url}/v1/auth/token",
            data={"username": "operator", "password": DEMO_PASSWORD},
            timeout=30,
        )
        assert signed_in.status_code == 200, signed_in.text
        headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        yield Served(base_url, headers, _known_ids(base_url, headers))
    finally:
        process.terminate()
        process.wait(timeout=30)
        if settings.database_url:
            queues = queue_names(Platform(settings, ALL))
            asyncio.run(drop_everything(settings, queues))


def _config(ids: dict[str, list[str]]) -> str:
    """schemathesis.toml: the known ids, for fields of those names, most of the time."""
    lines = []
    for field, values in ids.items():
        lines += [f"[dictionaries.{field}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for field in ids:
        binding = f'{{ dictionary = "{field}", probability = 0.8 }}'
        lines += [f'"{where}.{field}" = {binding}' for where in ("path", "query", "body")]
    lines.append('"body.building_ids[*]" = { dictionary = "building_id", probability = 0.8 }')
    lines.append('"body.member_ids[*]" = { dictionary = "resident_id", probability = 0.8 }')
    lines.append('"body.scope.ids[*]" = { dictionary = "compound_id", probability = 0.5 }')
    return "\n".join(lines) + "\n"


def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(
    served: Served, settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(served.ids))
    failed = {}
    for spec in ALL:
        app = create_app(Platform(settings, [spec]), with_workers=False, migrate=False)
        schema = tmp_path / f"{spec.name}.json"
        schema.write_text(json.dumps(app.openapi()))
        run = subprocess.run(
            _command(schema, config, served), capture_output=True, timeout=600, cwd=tmp_path
        )
        if run.returncode != 0:
            failed[spec.name] = run.stdout.decode(errors="replace")[-15_000:]
    assert not failed, "\n\n".join(f"{name}:\n{output}" for name, output in failed.items())


def _command(schema: Path, config: Path, served: Served) -> list[str]:
    return [
        str(BIN / "st"),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        str(schema),
        "--url",
        served.base_url,
        "--header",
        f"Authorization:{served.headers['Authorization']}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        os.environ.get("CORDON_FUZZ_SEED", "7"),
        "--phases",
        PHASES,
        # One worker: hypothesis describing strategies in two threads at once trips CPython
        # 3.11's AST recursion check (SystemError), and the machine is small anyway.
        "--workers",
        "1",
        "--warnings",
        "off",
    ]
