"""The operator's dead-letter commands, in the embedded mode: listing changes nothing however
often it runs, replay stops at its limit, an unknown queue is named as such."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cordon.cli import app
from cordon.platform import Platform
from cordon.services import ALL
from shared.bus.transport import PoisonMessage
from shared.events import Envelope
from shared.settings import Settings, get_settings
from tests.support import eventually
from tests.test_transport_contract import message

QUEUE = "testing.directory"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "data"
    monkeypatch.setenv("CORDON_DATA_DIR", str(folder))
    monkeypatch.setenv("CORDON_LOG_JSON", "false")
    for name in ("CORDON_DATABASE_URL", "CORDON_BROKER_URL", "CORDON_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


async def park(count: int, *, data_dir: Path) -> list[str]:
    platform = Platform(Settings(data_dir=data_dir, log_json=False), ALL)
    await platform.start()
    sent = [message("registry.place.registered", n=n) for n in range(count)]
    await platform.transport.publish(sent)
    directory = next(s for s in ALL if s.name == "testing").consumers[0]
    subscription = platform.runtime("testing").subscription(directory)

    async def refuse(envelope: Envelope) -> None:
        raise PoisonMessage("no such compound")

    async def all_parked() -> bool:
        return len(await platform.transport.parked(QUEUE, limit=count + 1)) == count

    consumer = asyncio.create_task(platform.transport.consume(subscription, refuse))
    await eventually(all_parked, what=f"{count} parked messages")
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await platform.close()
    return [m.event_id for m in sent]


def test_list_is_read_only_and_replay_stops_at_its_limit(data_dir: Path) -> None:
    sent = asyncio.run(park(5, data_dir=data_dir))
    runner = CliRunner()
    for _ in range(25):
        listed = runner.invoke(app, ["dead-letters", "list", "--queue", QUEUE])
        assert listed.exit_code == 0, listed.output
    assert [line.split()[0] for line in listed.output.splitlines()] == sent
    assert all(
        "attempts=1  PoisonMessage: no such compound" in line for line in listed.output.splitlines()
    )

    replayed = runner.invoke(app, ["dead-letters", "replay", "--queue", QUEUE, "--limit", "2"])
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 2 message(s)" in replayed.output and "limit was reached" in replayed.output
    left = runner.invoke(app, ["dead-letters", "list", "--queue", QUEUE])
    assert [line.split()[0] for line in left.output.splitlines()] == sent[2:]


def test_an_unknown_queue_is_named_with_the_known_ones(data_dir: Path) -> None:
    answer = CliRunner().invoke(app, ["dead-letters", "list", "--queue", "testing.directroy"])
    assert answer.exit_code == 2
    assert "no queue 'testing.directroy'" in answer.output
    assert "testing.directory" in answer.output and "unrouted" in answer.output
