"""The HTTP boundary every service shares: RFC 9457 problem details, the route class that
commits the request's unit of work and honours ``Idempotency-Key``, request context
(correlation ids, metrics) and the authenticated caller."""

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import InvalidTokenError, Principal, Role, read_token
from shared.observability import HTTP_REQUESTS, correlation_id, new_correlation_id
from shared.problems import Conflict, Forbidden, Invalid, Problem, Unauthorized
from shared.service import ServiceRuntime
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


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


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        errors.append({"field": ".".join(location) or "body", "message": message})
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
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
            return await on_unexpected(request, exc)
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

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(
            status=500,
            title="Internal Server Error",
            detail="something went wrong on our side; quote the correlation id to an operator",
            instance=request.url.path,
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DBAPIError, on_lost_database)
    app.add_exception_handler(Exception, on_unexpected)


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
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-correlation-id", cid.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope.get("method", ""), path, str(status)).observe(
                time.perf_counter() - started
            )
            correlation_id.reset(token)


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
        return read_token(token, secret=request.app.state.settings.secret_key)
    except InvalidTokenError as exc:
        raise Unauthorized("the token is invalid or has expired; sign in again") from exc


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
    in the same transaction; a retry with the same key gets that answer and changes nothing."""

    service: str = ""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            key = request.headers.get("idempotency-key") if request.method == "POST" else None
            if key is not None:
                replayed = await _stored_answer(request, key)
                if replayed is not None:
                    return replayed
            try:
                response = await handler(request)
            except BaseException:
                await _discard(request)
                raise
            return await _finish(request, response, key)

        return route


API_PREFIX = "/v1"


def service_router(service: str, **kwargs: Any) -> APIRouter:
    """A router of the service's resources under ``/v1``, committing at the boundary."""
    route_class = type(f"{service.title()}Route", (BoundaryRoute,), {"service": service})
    return APIRouter(prefix=API_PREFIX, route_class=route_class, **kwargs)


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _discard(request: Request) -> None:
    uow: UnitOfWork | None = getattr(request.state, "uow", None)
    if uow is not None:
        await uow.rollback()
        await uow.close()


async def _finish(request: Request, response: Response, key: str | None) -> Response:
    uow: UnitOfWork | None = getattr(request.state, "uow", None)
    if uow is None:
        return response
    try:
        if response.status_code >= 400:
            await uow.rollback()
            return response
        if request.method in WRITES and not uow.checked:
            await uow.rollback()
            # Failing closed: a write no policy allowed must not land, whoever forgot it.
            raise RuntimeError(f"{request.method} {request.url.path} checked no policy")
        if key is not None:
            await _remember(uow, request, key, response)
        await uow.commit()
        return response
    except IntegrityError:
        await uow.rollback()
        if key is not None and (stored := await _stored_answer(request, key)) is not None:
            return stored
        raise Conflict("this conflicts with a change made at the same moment; try again") from None
    finally:
        await uow.close()


async def _request_hash(request: Request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.url.path}?{request.url.query}".encode())
    if request.headers.get("content-type", "").startswith("application/json"):
        digest.update(await request.body())
    else:
        # Uploads are not read twice; their content is deduplicated by the service itself.
        digest.update(request.headers.get("content-length", "").encode())
    return digest.hexdigest()


def _principal_id(request: Request) -> str | None:
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    try:
        return read_token(token, secret=request.app.state.settings.secret_key).id
    except InvalidTokenError:
        return None


async def _stored_answer(request: Request, key: str) -> Response | None:
    principal = _principal_id(request)
    if principal is None:
        return None
    runtime = runtime_of(request)
    table = runtime.spec.kernel.idempotency
    async with runtime.database.session() as session:
        row = (
            await session.execute(
                select(table).where(table.c.principal == principal, table.c.key == key)
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != await _request_hash(request):
        raise Conflict(
            "this Idempotency-Key was already used for a different request; use a new key"
        )
    return Response(
        content=row.body,
        status_code=row.status_code,
        media_type=row.content_type,
        headers={"Idempotent-Replayed": "true"},
    )


async def _remember(uow: UnitOfWork, request: Request, key: str, response: Response) -> None:
    if len(key) > 200:
        raise Invalid("Idempotency-Key must be at most 200 characters")
    body = bytes(response.body).decode()
    table = runtime_of(request).spec.kernel.idempotency
    await uow.session.execute(
        table.insert().values(
            principal=uow.principal.id,
            key=key,
            method=request.method,
            path=request.url.path,
            request_hash=await _request_hash(request),
            status_code=response.status_code,
            content_type=response.media_type or "application/json",
            body=body,
            created_at=datetime.now(UTC),
        )
    )
