"""The HTTP boundary every service shares: RFC 9457 problem details, the route class that
commits the request's unit of work and honours ``Idempotency-Key``, request context
(correlation ids, metrics) and the authenticated caller."""

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel
from sqlalchemy import Row, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import sessions
from shared.auth import InvalidTokenError, Principal, Role, read_token
from shared.conflicts import integrity_conflict
from shared.fields import FieldError
from shared.idempotency import KeyedWrite, store_answers
from shared.kv import KeyValueUnavailable
from shared.observability import HTTP_REQUESTS, correlation_id, new_correlation_id
from shared.openapi import (
    IDEMPOTENCY_KEY_MAX,
    PROBLEM_JSON,
    declare_problems,
    depends_on,
    successes_answer_the_model,
)
from shared.problems import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Problem,
    Unauthorized,
    Unavailable,
)
from shared.service import ServiceRuntime
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

# The header of a create that may be retried (see BoundaryRoute).
IDEMPOTENCY_HEADER = "idempotency-key"
# What a caller is told to wait when the key-value store is away.
STORE_RETRY_SECONDS = 5


def problem_response(
    *,
    status: int,
    title: str,
    detail: str,
    instance: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "correlation_id": correlation_id.get(),
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def ready_json(answer: BaseModel, *, status: int = 200) -> Response:
    """An answer already in the shape its route documents (``response_model``), serialised
    once by pydantic: FastAPI would validate the model again and encode it twice, which on a
    hot route (a tube per scanned swab) costs as much as the rest of the answer."""
    return Response(answer.model_dump_json(), status_code=status, media_type="application/json")


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            # A rule across fields, refused about one of them: name it.
            location.append(cause.field)
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        errors.append({"field": ".".join(location) or "body", "message": message})
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return problem_response(
            status=exc.status,
            title=exc.title,
            detail=exc.detail,
            instance=request.url.path,
            errors=exc.errors,
            headers=headers,
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _field_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            status=422,
            title="Unprocessable Content",
            detail=detail,
            instance=request.url.path,
            errors=errors,
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            status=exc.status_code,
            title=_reason(exc.status_code),
            detail=str(exc.detail),
            instance=request.url.path,
        )

    async def on_lost_database(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DBAPIError)
        if not exc.connection_invalidated:
            # A bug: RequestContextMiddleware answers it as a 500 with the correlation id.
            raise exc
        # The connection died under the request (a database restart): its transaction is
        # gone and the pool reconnects, so the same request can simply be sent again.
        log.warning("database connection lost on %s %s", request.method, request.url.path)
        return problem_response(
            status=503,
            title="Service Unavailable",
            detail="the database connection was lost; nothing was saved, send it again",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    async def on_store_away(request: Request, exc: Exception) -> Response:
        # Sessions and sign-in throttles are checked in the key-value store; without it they
        # are refused (fail closed), and the caller is told to retry rather than sign in.
        log.error("key-value store unreachable on %s %s: %s", request.method, request.url, exc)
        return await on_problem(
            request,
            Unavailable(
                "sessions cannot be checked right now; try again in a few seconds",
                headers={"Retry-After": str(STORE_RETRY_SECONDS)},
            ),
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(KeyValueUnavailable, on_store_away)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DBAPIError, on_lost_database)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class RequestContextMiddleware:
    """Correlation id in and out (``X-Correlation-ID``), and a timing metric per route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        cid = headers.get(b"x-correlation-id", b"").decode("latin-1")[:80] or new_correlation_id()
        token = correlation_id.set(cid)
        started = time.perf_counter()
        status, responded = 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message.setdefault("headers", [])
                message["headers"].append((b"x-correlation-id", cid.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, inside the request's context, so the body, the header and the
            # log line carry its correlation id (Starlette's last-resort handler runs
            # outside every middleware, after the id is gone).
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if responded:
                raise
            await _unexpected(scope)(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope.get("method", ""), path, str(status)).observe(
                time.perf_counter() - started
            )
            correlation_id.reset(token)


def _unexpected(scope: Scope) -> Response:
    return problem_response(
        status=500,
        title="Internal Server Error",
        detail="something went wrong on our side; quote the correlation id to an operator",
        instance=str(scope.get("path", "")),
    )


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


def runtime_of(request: Request) -> ServiceRuntime:
    route = request.scope.get("route")
    service = getattr(route, "service", None)
    runtimes: dict[str, ServiceRuntime] = request.app.state.runtimes
    if service not in runtimes:
        raise RuntimeError(f"route {getattr(route, 'path', '?')} belongs to no running service")
    return runtimes[service]


async def current_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    if not token:
        raise Unauthorized("sign in first: send a bearer token from /v1/auth/token")
    try:
        principal = read_token(token, secret=request.app.state.settings.secret_key)
    except InvalidTokenError as exc:
        raise Unauthorized(
            "the token is invalid or has expired; refresh it or sign in again"
        ) from exc
    await sessions.check(runtime_of(request).kv, principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def unit_of_work(request: Request, principal: CurrentPrincipal) -> UnitOfWork:
    uow = runtime_of(request).uow(principal)
    request.state.uow = uow
    return uow


Uow = Annotated[UnitOfWork, Depends(unit_of_work)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise Forbidden(f"this needs one of the roles: {allowed}")
        return principal

    return check


class BoundaryRoute(APIRoute):
    """Commits the request's unit of work when the endpoint succeeded and rolls it back
    otherwise, so services never commit. A POST with ``Idempotency-Key`` stores its answer
    in the same transaction; a retry with the same key and the same body gets that answer
    and changes nothing. A violated constraint answers 409 naming the field, wherever it
    surfaced (a flush inside the endpoint, or the commit). Every error status the route can
    answer is documented as a problem detail (``shared.openapi``).

    The stored answer is looked for only when the key is known to be taken: a first attempt
    (nearly every request) pays no read. A retry runs the endpoint again in a transaction
    that cannot commit — storing the key collides with the stored one, which is answered —
    and when the endpoint fails instead (the state moved on since), the stored answer is
    looked for before the failure is answered."""

    service: str = ""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["responses"] = successes_answer_the_model(
            kwargs.get("responses") or {}, model=kwargs.get("response_model")
        )
        super().__init__(path, endpoint, **kwargs)
        declare_problems(self, authenticated=depends_on(self.dependant, current_principal))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            key = idempotency_key(request) if request.method == "POST" else None
            if key is None:
                return await _run(handler, request, key=None, body=None)
            if len(key) > IDEMPOTENCY_KEY_MAX:
                raise Invalid.on("Idempotency-Key", f"at most {IDEMPOTENCY_KEY_MAX} characters")
            body = BodyDigest(request)
            # Where an endpoint that writes in a group's transaction finds it (keyed_write).
            request.state.body_digest = body
            return await _run(handler, Request(request.scope, body.receive), key=key, body=body)

        return route


_IDEMPOTENCY_RAW = IDEMPOTENCY_HEADER.encode("latin-1")


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, if it sent one. Read from the raw headers: most
    requests send none, and a missing header costs Starlette's mapping an exception."""
    for name, value in request.scope["headers"]:
        if name == _IDEMPOTENCY_RAW:
            key: str = value.decode("latin-1")
            return key
    return None


API_PREFIX = "/v1"


def service_router(service: str, **kwargs: Any) -> APIRouter:
    """A router of the service's resources under ``/v1``, committing at the boundary."""
    route_class = type(f"{service.title()}Route", (BoundaryRoute,), {"service": service})
    return APIRouter(prefix=API_PREFIX, route_class=route_class, **kwargs)


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyDigest:
    """The SHA-256 of a request (method, path, query and body), taken as the body streams
    past to the endpoint: an upload of tens of MB is hashed without being held twice. A
    multipart body is hashed without its boundary, which a client draws anew for every
    attempt, so a retry of the same upload hashes the same."""

    def __init__(self, request: Request) -> None:
        self._digest = hashlib.sha256(
            f"{request.method} {request.url.path}?{request.url.query}".encode()
        )
        self._receive = request.receive
        self._complete = False
        self._boundary = _multipart_boundary(request.headers.get("content-type", ""))
        # The end of the last chunk, held back while it may be the start of a boundary.
        self._held = b""

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._complete = not message.get("more_body", False)
            self._update(message.get("body", b""))
        elif message["type"] == "http.disconnect":
            self._complete = True
            self._update(b"")
        return message

    def _update(self, chunk: bytes) -> None:
        if not self._boundary:
            self._digest.update(chunk)
            return
        data = (self._held + chunk).replace(self._boundary, b"")
        keep = 0 if self._complete else len(self._boundary) - 1
        self._held = data[len(data) - keep :] if keep else b""
        self._digest.update(data[: len(data) - keep] if keep else data)

    async def hexdigest(self) -> str:
        """The digest of the whole body, reading what the endpoint left unread."""
        while not self._complete:
            await self.receive()
        return self._digest.hexdigest()


def _multipart_boundary(content_type: str) -> bytes:
    media, _, parameters = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        return b""
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return b""


async def _run(
    handler: Callable[[Request], Coroutine[Any, Any, Response]],
    request: Request,
    *,
    key: str | None,
    body: BodyDigest | None,
) -> Response:
    try:
        response = await _answer(handler, request)
    except Unauthorized:
        # No stored answer for a token that no longer passes (a session signed out).
        await _discard(request)
        raise
    except Exception as exc:
        await _discard(request)
        if (replayed := await _replayed(request, key=key, body=body)) is not None:
            return replayed
        if isinstance(exc, IntegrityError):
            raise integrity_conflict(exc, runtime_of(request).spec.metadata) from None
        raise
    except BaseException:
        await _discard(request)
        raise
    return await _finish(request, response, key=key, body=body)


async def _answer(
    handler: Callable[[Request], Coroutine[Any, Any, Response]], request: Request
) -> Response:
    """The endpoint's answer. A write answered 404 while one of the service's projections is
    behind may name what has not arrived yet (stock received for a compound created a moment
    ago, an errand for a resident just imported): the work is rolled back, the projections
    are waited for (bounded: else 503 naming the lag, with Retry-After) and the endpoint runs
    once more on what they hold now. With the projections caught up, a 404 is answered at
    once; a read is answered as it is (a screen refreshes, and a stopped projection must not
    turn every lookup into a wait)."""
    try:
        return await handler(request)
    except NotFound:
        runtime = runtime_of(request)
        if request.method not in WRITES or not runtime.spec.projections or _is_form(request):
            raise
        # Roll back first: an embedded database's reader holds the lock the projection's
        # writer waits for.
        await _discard(request)
        if not await runtime.wait_for_projections():
            raise
    return await handler(request)


def _is_form(request: Request) -> bool:
    """A form's files were read by the first run: it is not run twice."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media in ("multipart/form-data", "application/x-www-form-urlencoded")


async def _replayed(
    request: Request, *, key: str | None, body: BodyDigest | None
) -> Response | None:
    """The answer stored under the request's key, if a request with it committed."""
    if key is None or body is None:
        return None
    stored = await _stored_row(request, key)
    return None if stored is None else _replay(stored, digest=await body.hexdigest())


async def _discard(request: Request) -> None:
    uow: UnitOfWork | None = getattr(request.state, "uow", None)
    if uow is not None:
        await uow.rollback()
        await uow.close()


async def _finish(
    request: Request, response: Response, *, key: str | None, body: BodyDigest | None
) -> Response:
    uow: UnitOfWork | None = getattr(request.state, "uow", None)
    if uow is None:
        return response
    try:
        if response.status_code >= 400:
            await uow.rollback()
            return await _replayed(request, key=key, body=body) or response
        if request.method in WRITES and not uow.checked:
            await uow.rollback()
            # Failing closed: a write no policy allowed must not land, whoever forgot it.
            raise RuntimeError(f"{request.method} {request.url.path} checked no policy")
        keyed = getattr(request.state, "keyed_write", None) or await keyed_write(
            request, uow.principal
        )
        if keyed is not None and not keyed.stored:
            table = runtime_of(request).spec.kernel.idempotency
            await store_answers(uow, table, [(keyed, response)])
        await uow.commit()
        return response
    except IntegrityError as exc:
        await uow.rollback()
        # The key stored before (a retry), or by a concurrent request: answer what it got.
        if (replayed := await _replayed(request, key=key, body=body)) is not None:
            return replayed
        raise integrity_conflict(exc, runtime_of(request).spec.metadata) from None
    finally:
        await uow.close()


def _principal_id(request: Request) -> str | None:
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    try:
        return read_token(token, secret=request.app.state.settings.secret_key).id
    except InvalidTokenError:
        return None


async def _stored_row(request: Request, key: str) -> Row[Any] | None:
    principal = _principal_id(request)
    if principal is None:
        return None
    runtime = runtime_of(request)
    table = runtime.spec.kernel.idempotency
    async with runtime.database.session() as session:
        query = select(table).where(table.c.principal == principal, table.c.key == key)
        return (await session.execute(query)).first()


def _replay(row: Row[Any], *, digest: str) -> Response:
    if row.request_hash != digest:
        raise Conflict.on(
            "Idempotency-Key",
            "this Idempotency-Key was already used for a different request; use a new key",
        )
    return Response(
        content=row.body,
        status_code=row.status_code,
        media_type=row.content_type,
        headers={"Idempotent-Replayed": "true"},
    )


async def keyed_write(request: Request, principal: Principal) -> KeyedWrite | None:
    """The request's key and digest if it sent an ``Idempotency-Key`` (else ``None``)."""
    body: BodyDigest | None = getattr(request.state, "body_digest", None)
    # The route keeps a digest only for a request that sent a key.
    key = idempotency_key(request) if body is not None else None
    if body is None or key is None:
        return None
    keyed = KeyedWrite(
        principal=principal.id,
        key=key,
        method=request.method,
        path=request.url.path,
        digest=await body.hexdigest(),
    )
    request.state.keyed_write = keyed
    return keyed
