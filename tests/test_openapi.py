"""The served OpenAPI of every service tells the truth about errors and inputs: every error
status an operation can answer is documented as a problem detail, and every string a request
carries states what it accepts (the kernel's FreeText and Moment, or a pattern or enum)."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cordon.app import create_app
from cordon.platform import Platform
from cordon.services import ALL
from shared.fields import ZONED_PATTERN
from shared.settings import Settings

PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}
WRITES = {"post", "put", "patch", "delete"}


@pytest.fixture(params=[spec.name for spec in ALL])
async def served(request: pytest.FixtureRequest, settings: Settings) -> dict[str, Any]:
    """One service's OpenAPI as its own process serves it."""
    spec = next(s for s in ALL if s.name == request.param)
    app = create_app(Platform(settings, [spec]), with_workers=False, migrate=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cordon.test") as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if method in WRITES | {"get"}:
                yield path, method, operation


def expected_statuses(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    statuses = {"500"}
    if "requestBody" in operation:
        statuses.add("400")
    if operation.get("security"):
        statuses |= {"401", "403", "422"}
    if "{" in path:
        statuses.add("404")
    if method in WRITES:
        statuses.add("409")
    if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
        statuses |= {"400", "413", "415"}
    return statuses


async def test_every_error_an_operation_answers_is_a_documented_problem(
    served: dict[str, Any],
) -> None:
    schemas = served["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"type", "title", "status", "detail", "instance", "correlation_id", "errors"} <= set(
        schemas["Problem"]["properties"]
    )
    lacking = []
    for path, method, operation in operations(served):
        responses = operation["responses"]
        missing = expected_statuses(path, method, operation) - set(responses)
        if missing:
            lacking.append(f"{method.upper()} {path}: {sorted(missing)}")
        for status, response in responses.items():
            # Readiness reports its checks, not a problem, when something does not answer.
            readiness = (path, status) == ("/readyz", "503")
            problem = response.get("content", {}).get("application/problem+json")
            if int(status) >= 400 and problem != PROBLEM and not readiness:
                lacking.append(f"{method.upper()} {path} {status}: {response.get('content')}")
    assert not lacking, "\n".join(lacking)


async def test_every_success_an_operation_answers_says_what_its_body_is(
    served: dict[str, Any],
) -> None:
    """A second success status (a 200 `duplicate` beside the 201 of a first upload) answers
    a body too: the client must find its shape documented."""
    lacking = [
        f"{method.upper()} {path} {status}"
        for path, method, operation in operations(served)
        for status, response in operation["responses"].items()
        if 200 <= int(status) < 300 and status != "204" and not response.get("content")
    ]
    assert not lacking, "\n".join(lacking)


async def test_metrics_are_documented_as_text(served: dict[str, Any]) -> None:
    metrics = served["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def strings(schema: dict[str, Any], schemas: dict[str, Any], where: str) -> Iterator[tuple]:
    """Every string schema reachable from ``schema``, with where it is."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        yield from strings(schemas[name], schemas, f"{where}→{name}")
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from strings(option, schemas, where)
    if schema.get("type") == "string":
        yield where, schema
    for name, prop in schema.get("properties", {}).items():
        yield from strings(prop, schemas, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from strings(schema["items"], schemas, f"{where}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from strings(schema["additionalProperties"], schemas, f"{where}{{}}")


def constrained(schema: dict[str, Any]) -> bool:
    if schema.get("format") == "date-time":
        return schema.get("pattern") == ZONED_PATTERN
    return any(key in schema for key in ("pattern", "enum", "const", "format"))


async def test_every_string_a_request_carries_says_what_it_accepts(
    served: dict[str, Any],
) -> None:
    """Free text on the kernel's FreeText (no control characters), times on Moment (with
    their offset), codes with a pattern: so a new input field cannot forget either."""
    schemas = served["components"]["schemas"]
    loose = []
    for path, method, operation in operations(served):
        where = f"{method.upper()} {path}"
        found = [
            item
            for parameter in operation.get("parameters", [])
            if parameter["in"] in ("query", "path")
            for item in strings(parameter["schema"], schemas, f"{where} ?{parameter['name']}")
        ]
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            if media == "application/json":
                found += strings(content.get("schema", {}), schemas, f"{where} body")
        loose += [f"{place}: {schema}" for place, schema in found if not constrained(schema)]
    assert not loose, "\n".join(loose)
