"""The OpenAPI tells the truth about errors: every status an operation can answer, each as
an RFC 9457 problem detail in ``application/problem+json``, declared by one rule for every
service's routes (:func:`declare_problems`, applied by the kernel's route class) rather than
by each endpoint. A route adds what only it knows (a throttled sign-in's 429) with
``responses={429: {"description": ...}}``; the rule gives it the problem body."""

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
IDEMPOTENCY_KEY_MAX = 200


class FieldError(BaseModel):
    """One thing wrong with the request: a field, or a row and column of an uploaded file."""

    field: str | None = Field(None, description="The request field (dotted), parameter or header")
    row: int | None = Field(None, description="The file's row (the header is row 1)")
    column: str | None = Field(None, description="The file's column")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem detail: every error this API answers has this shape."""

    type: str = Field("about:blank", description="Always about:blank: `status` says it all")
    title: str = Field(examples=["Unprocessable Content"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["care_notes: contains a control character (U+0001)"])
    instance: str = Field(description="The path that answered", examples=["/v1/residents"])
    correlation_id: str = Field(
        description="Also in the X-Correlation-ID header: quote it to an operator",
        examples=["5f0c3b6e2a8d4e71b1f0c0e7d9a3b2c4"],
    )
    errors: list[FieldError] | None = Field(
        None, description="What is wrong, by field or by row and column"
    )


WHY = {
    400: "The body could not be read (a broken form or multipart upload)",
    401: "No bearer token, or an invalid or expired one: sign in at /v1/auth/token",
    403: "Your role or scope does not allow this",
    404: "Nothing by that id in your scope",
    409: "Conflicts with the current state: a name or number taken, a state that forbids "
    "it, or an Idempotency-Key used before for a different request",
    413: "The upload is larger than the configured limit",
    415: "The upload's media type is not accepted",
    422: "The request is invalid: `errors` names each field (or row and column)",
    429: "Too many attempts: wait and try again",
    500: "Our fault: quote the correlation id to an operator",
    503: "Nothing was saved; send it again after Retry-After: the database connection was "
    "lost under the request, or what it names has not reached this service yet (the "
    "detail says how far behind)",
}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """An OpenAPI response whose body is a problem detail."""
    return {
        "description": description or WHY.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: problem_response(status) for status in statuses}


def declare_problems(route: APIRoute, *, authenticated: bool) -> None:
    """Document what the kernel makes every route answer:

    - 500 everywhere; 401 and 403 where a principal is required, and 503 there too (its
      unit of work lost the database connection: send it again);
    - 422 where anything is read from the request (and wherever a principal acts);
    - 400 where a body is read (one that is not even JSON);
    - 404 where the path or query names something by id, or a principal's body or upload may;
    - 409 on every write (taken names, states, a reused Idempotency-Key);
    - 400, 413 and 415 on uploads (a File parameter, or a route that declares 413 or 415);
    - and a problem body on every error status the route itself declares (e.g. 429).
    """
    dependant, methods = route.dependant, route.methods or set()
    statuses = {500}
    reads = _reads_request(dependant)
    if authenticated:
        statuses |= {401, 403, 422, 503}
    if reads:
        statuses.add(422)
    if route.body_field is not None:
        statuses.add(400)
    upload = _uploads(dependant) or bool({413, 415} & {_status(s) for s in route.responses})
    # A body (an upload too) naming only what lies outside the caller's scope is not found.
    if _names_by_id(dependant) or (authenticated and (route.body_field is not None or upload)):
        statuses.add(404)
    if methods & WRITES:
        statuses.add(409)
    if upload:
        statuses |= {400, 413, 415}
    statuses |= {_status(s) for s in route.responses if _status(s) >= 400}
    for status in sorted(statuses):
        declared = route.responses.pop(status, None) or route.responses.pop(str(status), {})
        # A route's own body for an error status (a batch's report by row) stays beside it.
        content = {**declared.get("content", {}), **problem_response(status)["content"]}
        route.responses[status] = {**problem_response(status), **declared, "content": content}
    if authenticated and "POST" in methods:
        route.openapi_extra = _with_idempotency_key(route.openapi_extra)


def successes_answer_the_model(
    responses: dict[int | str, dict[str, Any]], *, model: Any
) -> dict[int | str, dict[str, Any]]:
    """A second success status a route declares (a 200 `duplicate` beside the 201 of a first
    upload) answers the route's response model, unless it says what it answers."""
    if not isinstance(model, type):
        return responses
    return {
        status: (
            {**response, "model": model}
            if 200 <= _status(status) < 300
            and _status(status) != 204
            and "model" not in response
            and "content" not in response
            else response
        )
        for status, response in responses.items()
    }


def _status(status: int | str) -> int:
    return int(status) if str(status).isdigit() else 0


def _names_by_id(dependant: Dependant) -> bool:
    return any(
        d.path_params or any(q.name.endswith("_id") for q in d.query_params)
        for d in _all(dependant)
    )


def _with_idempotency_key(extra: dict[str, Any] | None) -> dict[str, Any]:
    extra = dict(extra or {})
    if any(p.get("name") == "Idempotency-Key" for p in extra.get("parameters", [])):
        return extra
    extra["parameters"] = [
        *extra.get("parameters", []),
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "A retry with the same key and the same request gets the first "
            "answer (Idempotent-Replayed: true) and changes nothing; the same key with a "
            "different request answers 409",
            "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
        },
    ]
    return extra


def depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    """Whether ``call`` is among the dependencies of the route, at any depth."""
    return any(d.call is call or depends_on(d, call) for d in dependant.dependencies)


def _all(dependant: Dependant) -> Iterable[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _all(sub)


def _reads_request(dependant: Dependant) -> bool:
    return any(
        d.path_params or d.query_params or d.header_params or d.cookie_params or d.body_params
        for d in _all(dependant)
    )


def _uploads(dependant: Dependant) -> bool:
    return any(
        isinstance(field.field_info, params.File)
        for d in _all(dependant)
        for field in d.body_params
    )


def install_openapi(app: FastAPI) -> None:
    """Serve the problem schema with the API's OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(problem.pop("$defs", {}))
            schemas["Problem"] = problem
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
