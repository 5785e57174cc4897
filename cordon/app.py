"""The HTTP application: one base URL, ``/v1/<resource>`` per owning service."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from cordon.platform import Platform
from shared.bus.transport import UNROUTED
from shared.http import RequestContextMiddleware, install_problem_handlers
from shared.observability import QUEUE_DEPTH
from shared.openapi import install_openapi, problem_responses
from shared.settings import Settings

DESCRIPTION = """Cordon runs the operations of an epidemic lockdown: places, households and
residents, screening rounds, supplies and alerts, for a town office and its compounds.

Sign in with `POST /v1/auth/token` (OAuth2 password flow) and send the token as a bearer.
Every create accepts an `Idempotency-Key` header: a retry with the same key returns the first
answer and creates nothing new. Errors are RFC 9457 problem details naming the field or row.
Lists are cursor-paginated: pass `next_cursor` back as `cursor`."""
TOKEN_PATH = "/v1/auth/token"
CONSOLE = Path(__file__).parent / "console" / "static"
NO_SIGN_IN_HERE = """

This process does not serve the sign-in: call `POST /v1/auth/token` on the registry or the
gateway, or start it with `CORDON_TOKEN_URL` set to that URL (and the registry with
`CORDON_CORS_ORIGINS` naming this origin) so that *Authorize* here signs in there."""


def create_app(
    platform: Platform, *, with_workers: bool, migrate: bool = True, own_process: bool = False
) -> FastAPI:
    """``with_workers`` runs relays and consumers in this process (the embedded mode);
    ``own_process`` when the app is all its process serves until it stops (``cordon serve``,
    ``cordon run``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await platform.start(migrate=migrate)
        if own_process:
            _settle_heap()
        workers = asyncio.create_task(platform.run_workers()) if with_workers else None
        try:
            yield
        finally:
            if workers is not None:
                workers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await workers
            await platform.close()

    app = FastAPI(
        title="Cordon",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = platform.settings
    app.state.runtimes = platform.runtimes
    app.state.platform = platform
    app.add_middleware(RequestContextMiddleware)
    if platform.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=platform.settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    install_problem_handlers(app)
    install_openapi(app)
    for runtime in platform.runtimes.values():
        for router in runtime.spec.routers:
            app.include_router(router)
    _add_health(app, platform)
    _advertise_token_url(app, platform.settings)
    _serve_console(app, platform)
    return app


def _serve_console(app: FastAPI, platform: Platform) -> None:
    """The operators' console: static files, a client of the public /v1 API like any other
    (no route of its own). Served by the process that signs in, so the gateway routes
    /console/ where /v1/auth lives and the console's calls stay on one origin."""
    if "registry" not in platform.runtimes:
        return
    app.mount("/console", StaticFiles(directory=CONSOLE, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/")


def _advertise_token_url(app: FastAPI, settings: Settings) -> None:
    """Point Authorize in /docs at a sign-in that answers: here when this process serves
    it, else CORDON_TOKEN_URL (the registry or the gateway)."""
    serves_sign_in = any(getattr(route, "path", None) == TOKEN_PATH for route in app.routes)
    if serves_sign_in:
        return
    if settings.token_url is None:
        app.description += NO_SIGN_IN_HERE
        return
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        schemes = schema.get("components", {}).get("securitySchemes", {})
        for scheme in schemes.values():
            password = scheme.get("flows", {}).get("password")
            if password is not None:
                password["tokenUrl"] = settings.token_url
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool] = Field(
        description="database:<service>, bus, kv, workers: answering (running) or not"
    )
    workers: dict[str, Any] = Field(
        default_factory=dict, description="each background task: up, since, restarts, error"
    )
    projections: dict[str, Any] = Field(
        default_factory=dict, description="each projection's lag behind its producer"
    )


def _add_health(app: FastAPI, platform: Platform) -> None:
    @app.get(
        "/healthz",
        tags=["health"],
        summary="The process is alive",
        responses=problem_responses(500),
    )
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Databases, bus and key-value store answer; worker tasks run",
        description="`workers` lists each background task this process runs (relays, "
        "consumers, periodic jobs): whether it is up, for how long, how often it was restarted "
        "and its last error. One down for longer than the grace makes the answer 503.",
        response_model=Readiness,
        responses={
            503: {"description": "Something does not answer", "model": Readiness},
            **problem_responses(500),
        },
    )
    async def readyz() -> JSONResponse:
        checks = await platform.ready()
        ok = all(checks.values())
        # A projection behind its producer is still ready to serve: work that needs it
        # current (scheduling a round) waits or refuses on its own. Shown for operators.
        body: dict[str, object] = {"status": "ready" if ok else "not ready", "checks": checks}
        body["workers"] = platform.supervisor.report()
        body["projections"] = await platform.lags()
        return JSONResponse(
            body,
            status_code=200 if ok else 503,
        )

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics (text exposition format)",
        response_class=PlainTextResponse,
        responses=problem_responses(500),
    )
    async def metrics() -> Response:
        await platform.lags()
        for runtime in platform.runtimes.values():
            await runtime.relay.backlog()
            for consumer in runtime.spec.consumers:
                queue = runtime.subscription(consumer).queue
                with contextlib.suppress(Exception):
                    QUEUE_DEPTH.labels(queue, "ready").set(await platform.transport.depth(queue))
        with contextlib.suppress(Exception):
            # Events that matched no queue: kept, but nobody acts on them until replayed.
            QUEUE_DEPTH.labels(UNROUTED, UNROUTED).set(await platform.transport.depth(UNROUTED))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _settle_heap() -> None:
    """What start-up built (modules, models, routes, pools) lives as long as the process,
    and a full collection walks all of it: measured in `cordon serve`, a pause of 130-240 ms
    every 2,000 tubes or so, which lands in some request's latency. Frozen, the collector
    skips it (a full collection then takes a millisecond or two)."""
    gc.collect()
    gc.freeze()
