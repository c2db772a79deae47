"""Domain failures of the virtual clinic, each with the HTTP status the API answers with."""

from __future__ import annotations


class ClinicError(Exception):
    """A refused operation: ``status`` (4xx), ``kind`` (the problem type) and the offending
    ``field``; the API answers it as problem+json (control/problems.py)."""

    status = 400
    kind = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class Invalid(ClinicError):
    status = 422
    kind = "invalid-input"


class Unauthenticated(ClinicError):
    status = 401
    kind = "unauthenticated"


class Forbidden(ClinicError):
    status = 403
    kind = "forbidden"


class Missing(ClinicError):
    status = 404
    kind = "not-found"


class Conflict(ClinicError):
    status = 409
    kind = "conflict"
