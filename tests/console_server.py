"""The whole system served by uvicorn on a free port, in a thread of the test process, with
a small demo town: what the console tests' browser talks to. Running in-process lets a test
move the periodic jobs' clock (a downgrade proposal after seven quiet days) on the server's
own event loop."""

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from cordon.app import create_app
from cordon.platform import Platform
from cordon.services import ALL
from services.registry.demo import DEMO_PASSWORD, ensure_demo_town
from shared.settings import Settings
from tests.conftest import AMQP_URL, PG_URL, REDIS_URL, drop_everything, queue_names

T = TypeVar("T")
TOWN_TIME_ZONE = "Asia/Urumqi"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def console_settings(backend: str, data_dir: Path) -> Settings:
    prefix = f"c{uuid.uuid4().hex[:10]}_"
    common: dict[str, Any] = {
        "data_dir": data_dir,
        "schema_prefix": prefix,
        "secret_key": "console-test-secret-" + "x" * 40,
        "retry_base_seconds": 0.05,
        "relay_interval_seconds": 0.05,
        "log_json": False,
        # Not the default clock: the console must show times in the town's, read from
        # /v1/auth/me, whatever it is (Urumqi is two hours behind Shanghai).
        "time_zone": TOWN_TIME_ZONE,
    }
    if backend == "embedded":
        return Settings(**common)
    return Settings(
        **common,
        database_url=PG_URL,
        broker_url=AMQP_URL,
        redis_url=REDIS_URL,
        exchange=f"cordon_{prefix}",
    )


class Served:
    """A running Cordon: ``base`` to browse, ``run`` to await a coroutine on its loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.platform = Platform(settings, ALL)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        app = create_app(self.platform, with_workers=True)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, daemon=True, name="cordon-console")

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def start(self, *, residents: int) -> None:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the console's server did not start")
            time.sleep(0.05)
        self.run(ensure_demo_town(self.platform.runtime("registry"), size=residents), 300)
        self.caught_up()

    def caught_up(self, within: float = 180) -> None:
        """Wait until the testing service's directory holds what the registry committed (a
        round is scheduled on a current view; the console would show the 503 otherwise)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            lags = self.run(self.platform.lags())
            if lags and all(lag.get("caught_up") for lag in lags.values()):
                return
            time.sleep(0.2)
        raise AssertionError(f"projections still behind after {within}s: {lags}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        queues = queue_names(self.platform)
        # The test's thread may hold pytest's event loop: drop from a thread of its own.
        dropping = threading.Thread(
            target=asyncio.run, args=(drop_everything(self.settings, queues),)
        )
        dropping.start()
        dropping.join(120)

    def token(self, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
        answer = httpx.post(
            f"{self.base}/v1/auth/token",
            data={"username": username, "password": password},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def api(self, username: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=self.token(username), timeout=60)


@contextmanager
def served(backend: str, data_dir: Path, *, residents: int) -> Iterator[Served]:
    server = Served(console_settings(backend, data_dir))
    try:
        server.start(residents=residents)
        yield server
    finally:
        server.stop()
