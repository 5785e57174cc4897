"""Errors a caller can act on; the HTTP boundary answers them as RFC 9457 problem details."""

from typing import Any, Self


class Problem(Exception):
    """An error the caller can act on, answered as a problem detail."""

    status = 400
    title = "Bad Request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        # Sent with the answer, e.g. Retry-After on 429 and 503.
        self.headers = headers or {}

    @classmethod
    def on(cls, field: str, message: str) -> Self:
        """The problem with one field of the request, named in ``errors``."""
        return cls(message, errors=[{"field": field, "message": message}])


class Invalid(Problem):
    status, title = 422, "Unprocessable Content"


class NotFound(Problem):
    status, title = 404, "Not Found"


class Conflict(Problem):
    status, title = 409, "Conflict"


class Forbidden(Problem):
    status, title = 403, "Forbidden"


class Unauthorized(Problem):
    status, title = 401, "Unauthorized"


class TooLarge(Problem):
    status, title = 413, "Content Too Large"


class TooManyRequests(Problem):
    status, title = 429, "Too Many Requests"


class UnsupportedMedia(Problem):
    status, title = 415, "Unsupported Media Type"


class Unavailable(Problem):
    """Not now: what the answer depends on is behind (give ``Retry-After`` in ``headers``)."""

    status, title = 503, "Service Unavailable"


# The phrase every "not found in the caller's scope" message ends with.
OUT_OF_SCOPE = "in your scope"


def rows_rejected(detail: str, errors: list[dict[str, Any]]) -> Problem:
    """A bulk request none of whose rows could be applied: 422 naming the rows, or 404 when
    every row named something outside the caller's scope, so that a batch tells an outsider
    no more than a single request would."""
    outside = bool(errors) and all(str(e.get("message", "")).endswith(OUT_OF_SCOPE) for e in errors)
    return (NotFound if outside else Invalid)(detail, errors=errors)
