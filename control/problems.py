"""RFC 9457 problem details: every error the control API returns is application/problem+json.

Handlers raise ``Problem``; the middleware in control/app.py turns it (and aiohttp's own HTTP
errors, and anything unexpected) into a response. ``type`` is a stable URN per kind of error
so clients can branch on it; ``field`` names the input at fault when there is one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:televisit:problem:"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """An error answer: ``kind`` becomes the type URN, ``extra`` extends the body."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        field: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.field = field
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": TYPE_PREFIX + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out

    def response(self) -> web.Response:
        return web.json_response(
            self.body(), status=self.status, content_type=CONTENT_TYPE, headers=self.headers
        )


def invalid(field: str, detail: str, **extra: Any) -> Problem:
    return Problem(422, "invalid-input", f"{field}: {detail}", field=field, **extra)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"{what} not found")


def conflict(kind: str, detail: str, *, field: str | None = None) -> Problem:
    return Problem(409, kind, detail, field=field)


def retry_later(status: int, kind: str, detail: str, seconds: int) -> Problem:
    """A refusal that may succeed later: ``Retry-After`` header and ``retry_after`` field."""
    return Problem(status, kind, detail, headers={"Retry-After": str(seconds)}, retry_after=seconds)


def from_http_error(exc: web.HTTPException) -> Problem:
    """aiohttp's own errors (unknown path, wrong method, body over client_max_size)."""
    status = exc.status
    if status == 413:
        return Problem(413, "body-too-large", "the request body is larger than allowed")
    if status == 404:
        return Problem(404, "not-found", "no such resource")
    if status == 405:
        allow = exc.headers.get("Allow", "")
        return Problem(
            405, "method-not-allowed", "method not allowed here", headers={"Allow": allow}
        )
    return Problem(status, "http-error", exc.reason or _TITLES.get(status, "error"))
