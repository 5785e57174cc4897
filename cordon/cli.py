"""The `cordon` command: run the system, its parts, and the operator's tools."""

import asyncio
import gc
import ipaddress
import logging
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError

from cordon import catalogue
from cordon.app import create_app
from cordon.platform import Platform
from cordon.services import named
from shared.bus.transport import UNROUTED
from shared.migrations import autogenerate
from shared.observability import configure_logging
from shared.service import topology
from shared.settings import DEFAULT_SECRET, Mode, Settings, get_settings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
dead_letters = typer.Typer(
    help="Messages parked after their retries ran out, and events no queue was bound for "
    f"(queue `{UNROUTED}`)."
)
app.add_typer(dead_letters, name="dead-letters")
bus = typer.Typer(help="The message bus's topology.")
app.add_typer(bus, name="bus")

ServiceOpt = Annotated[str, typer.Option("--service", "-s", help="registry, testing…")]
ServicesOpt = Annotated[
    list[str] | None, typer.Option("--service", "-s", help="Repeat for several; all by default")
]
log = logging.getLogger("cordon")


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValidationError as exc:
        # One line per problem, without pydantic's echo of the input (URLs and secrets).
        for error in exc.errors():
            field = "_".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            named = f"CORDON_{field}: " if field else ""
            typer.echo(f"cordon: refusing to start: {named}{message}", err=True)
        raise typer.Exit(2) from None
    configure_logging(json_lines=settings.json_logs)
    return settings


def refusal_to_listen(settings: Settings, host: str) -> str | None:
    """Why the server must not listen on ``host``, or None. The embedded default secret is
    in the source: on anything but loopback, anyone on the network could sign tokens."""
    if settings.secret_key != DEFAULT_SECRET or _loopback(host):
        return None
    return (
        f"the default CORDON_SECRET_KEY serves only this machine (127.0.0.1, ::1), not {host}; "
        "set CORDON_SECRET_KEY to 32 or more random characters (openssl rand -hex 32)"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listening_settings(host: str) -> Settings:
    """The settings, or a one-line refusal when they must not serve ``host``."""
    settings = _settings()
    if (why := refusal_to_listen(settings, host)) is not None:
        typer.echo(f"cordon: refusing to start: {why}", err=True)
        raise typer.Exit(2)
    return settings


def _with_platform(
    services: list[str] | None, work: Callable[[Platform], Awaitable[Any]], *, migrate: bool
) -> Any:
    async def main() -> Any:
        platform = Platform(_settings(), named(services))
        await platform.start(migrate=migrate)
        try:
            return await work(platform)
        finally:
            await platform.close()

    return asyncio.run(main())


@app.command()
def run(
    host: str = "127.0.0.1",
    port: int = 8000,
    demo_size: Annotated[int, typer.Option(help="Residents in the demo town")] = 25_000,
) -> None:
    """Start the whole system in one process (embedded mode), with a demo town."""
    from services.registry import demo

    settings = _listening_settings(host)
    platform = Platform(settings, named(None))

    async def prepare() -> None:
        await platform.start()
        try:
            await demo.ensure_demo_town(platform.runtime("registry"), size=demo_size)
        finally:
            await platform.close()

    asyncio.run(prepare())
    platform = Platform(settings, named(None))
    base = f"http://{host}:{port}"
    typer.echo(f"\nCordon is running in the {settings.mode.value} mode.")
    typer.echo(f"  Console:   {base}/console/")
    typer.echo(f"  API docs:  {base}/docs")
    typer.echo(f"  Health:    {base}/readyz   Metrics: {base}/metrics")
    for line in demo.describe_logins():
        typer.echo(f"  {line}")
    typer.echo("")
    uvicorn.run(create_app(platform, with_workers=True), host=host, port=port, log_config=None)


@app.command()
def serve(
    service: ServicesOpt = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[
        int, typer.Option(help="API processes sharing the port (distributed mode)", min=1)
    ] = 1,
) -> None:
    """Serve the API of one or more services (distributed mode; run `migrate` first)."""
    settings = _listening_settings(host)
    embedded = settings.mode is Mode.embedded
    if workers > 1 and embedded:
        # One SQLite writer and an in-process bus: a second process would not see the first.
        typer.echo("cordon: --workers above 1 needs the distributed mode", err=True)
        raise typer.Exit(2)
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "proxy_headers": True,
        "forwarded_allow_ips": os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    }
    if workers == 1:
        platform = Platform(settings, named(service))
        app_ = _long_lived(create_app(platform, with_workers=embedded, migrate=embedded))
        uvicorn.run(app_, **common)
        return
    # Each worker process builds its own app (uvicorn imports the factory in every child).
    os.environ[SERVE_SERVICES] = ",".join(service or [])
    uvicorn.run("cordon.cli:served_app", factory=True, workers=workers, **common)


SERVE_SERVICES = "CORDON_SERVE_SERVICES"


def served_app() -> Any:
    """The API app of the services `cordon serve --workers N` was given, in a worker process."""
    names = [n for n in os.environ.get(SERVE_SERVICES, "").split(",") if n]
    platform = Platform(_settings(), named(names or None))
    return _long_lived(create_app(platform, with_workers=False, migrate=False))


def _long_lived(app_: Any) -> Any:
    """What exists before serving lives as long as the process: frozen out of the cyclic
    collector's scans, a full collection (which requests' allocations set off now and then)
    walks what requests made, not every module, model and route. On the console's compound
    page at 300,000 residents, two or three pages in thirty took 120-200 ms more without."""
    gc.collect()
    gc.freeze()
    return app_


@app.command()
def worker(service: ServicesOpt = None) -> None:
    """Run the outbox relays and event consumers of one or more services."""

    async def work(platform: Platform) -> None:
        log.info("worker started for %s", ", ".join(platform.runtimes))
        await platform.run_workers()

    _with_platform(service, work, migrate=False)


@app.command()
def migrate(service: ServicesOpt = None) -> None:
    """Apply the database migrations of the services, and declare the whole bus topology."""

    async def work(platform: Platform) -> None:
        typer.echo(f"migrated: {', '.join(platform.runtimes)}")

    _with_platform(service, work, migrate=True)


@bus.command("declare")
def declare_bus() -> None:
    """Declare every service's queues and bindings (idempotent; `migrate` does it too). Run it
    before any producer starts, so that no event is published before its queue exists."""

    async def work(platform: Platform) -> None:
        names = [s.queue for s in topology(platform.topology, settings=platform.settings)]
        typer.echo(f"declared {len(names)} queue(s): {', '.join(names)}")

    _with_platform([], work, migrate=False)


@app.command()
def bootstrap(
    town_code: Annotated[str, typer.Option()],
    town_name: Annotated[str, typer.Option()],
    username: Annotated[str, typer.Option()],
    password: Annotated[
        str | None,
        typer.Option(
            envvar="CORDON_BOOTSTRAP_PASSWORD",
            help="The operator's password; without it one is made and printed once",
        ),
    ] = None,
) -> None:
    """Create a town and its first town operator."""
    from services.registry import demo

    # No prompt: scripts and containers have no terminal to answer it.
    made = password is None
    secret = secrets.token_urlsafe(12) if password is None else password

    async def work(platform: Platform) -> None:
        town_id = await demo.bootstrap_town(
            platform.runtime("registry"),
            town_code=town_code,
            town_name=town_name,
            username=username,
            password=secret,
        )
        typer.echo(f"town {town_code} created ({town_id}); operator {username}")
        if made:
            typer.echo(f"password: {secret}  (made for you; shown once, keep it safe)")

    _with_platform(["registry"], work, migrate=True)


@app.command("demo")
def demo_town(
    size: Annotated[int, typer.Option(help="Residents, up to 1,000,000")] = 25_000,
    seed: int = 7,
) -> None:
    """Build the demo town (5 committees, ~20 compounds) unless it exists."""
    from services.registry import demo

    async def work(platform: Platform) -> None:
        login = await demo.ensure_demo_town(platform.runtime("registry"), size=size, seed=seed)
        typer.echo("the demo town exists already" if login is None else "demo town built")
        for line in demo.describe_logins():
            typer.echo(line)
        await platform.runtime("registry").relay.drain()

    _with_platform(["registry"], work, migrate=True)


@app.command()
def resync(service: ServiceOpt = "registry") -> None:
    """Republish a snapshot of a service's state as events, to rebuild projections."""

    async def work(platform: Platform) -> None:
        from shared.auth import Principal

        runtime = platform.runtime(service)
        if runtime.spec.resync is None:
            raise typer.BadParameter(f"{service} has nothing to re-sync")
        async with runtime.uow(Principal.system("resync")) as uow:
            events = await runtime.spec.resync(uow)
            await uow.commit()
        published = await runtime.relay.drain()
        typer.echo(f"re-sync of {service}: {events} events written, {published} published")

    _with_platform([service], work, migrate=False)


@dead_letters.command("list")
def list_dead_letters(
    queue: Annotated[str, typer.Option(help=f"e.g. testing.directory, or {UNROUTED}")],
    limit: int = 50,
) -> None:
    """Show parked messages of a queue, with the error that parked them. Read-only: listing
    as often as you like changes nothing."""

    async def work(platform: Platform) -> None:
        _known_queue(platform, queue)
        parked = await platform.transport.parked(queue, limit=limit)
        if not parked:
            typer.echo(f"no parked messages on {queue}")
        for message in parked:
            typer.echo(
                f"{message.event_id}  {message.routing_key}  attempts={message.attempts}  "
                f"{message.error}"
            )

    _with_platform([], work, migrate=False)


@dead_letters.command("replay")
def replay_dead_letters(
    queue: Annotated[str, typer.Option(help=f"e.g. testing.directory, or {UNROUTED}")],
    event_id: Annotated[list[str] | None, typer.Option(help="Only these; all by default")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many in one run")] = 10_000,
) -> None:
    """Send parked messages back to their queue for another try (unrouted events back to the
    exchange), in batches, at most --limit of them."""

    async def work(platform: Platform) -> None:
        _known_queue(platform, queue)
        count = await platform.transport.replay(queue, event_ids=event_id or None, limit=limit)
        more = "; the limit was reached: run it again for more" if count == limit else ""
        typer.echo(f"replayed {count} message(s) to {queue}{more}")

    _with_platform([], work, migrate=False)


def _known_queue(platform: Platform, queue: str) -> None:
    known = [s.queue for s in topology(platform.topology, settings=platform.settings)]
    if queue not in [*known, UNROUTED]:
        raise typer.BadParameter(
            f"no queue {queue!r}; the queues are {', '.join([*known, UNROUTED])}",
            param_hint="--queue",
        )


@app.command("events-doc")
def events_doc(
    check: Annotated[bool, typer.Option(help="Fail if docs/events.md is stale")] = False,
    path: Path = Path("docs/events.md"),
) -> None:
    """Write the event catalogue (docs/events.md) from the event contracts."""
    _write_doc(catalogue.render(), path=path, check=check, command="events-doc")


def _write_doc(text: str, *, path: Path, check: bool, command: str) -> None:
    """Write a generated page, or with ``check`` fail when the one on disk differs."""
    if check:
        if not path.exists() or path.read_text() != text:
            typer.echo(f"{path} is stale: run `cordon {command}`", err=True)
            raise typer.Exit(1)
        return
    path.write_text(text)
    typer.echo(f"wrote {path}")


@app.command("ledger-doc")
def ledger_doc(
    check: Annotated[bool, typer.Option(help="Fail if docs/ledger.md is stale")] = False,
    path: Path = Path("docs/ledger.md"),
) -> None:
    """Write the ledger import's guide (docs/ledger.md) from the parser's tables."""
    from services.registry.ledger import guide

    _write_doc(guide.render(), path=path, check=check, command="ledger-doc")


@app.command()
def makemigration(
    service: ServiceOpt, message: Annotated[str, typer.Option("--message", "-m")]
) -> None:
    """Generate a migration from the models (developers)."""
    from shared.db import Database

    spec = named([service])[0]

    async def work() -> None:
        with tempfile.TemporaryDirectory() as scratch:
            database = Database(url=f"sqlite+aiosqlite:///{scratch}/scratch.db", schema=service)
            await autogenerate(database, spec.migrations, message)
            await database.dispose()

    asyncio.run(work())


if __name__ == "__main__":
    app()
