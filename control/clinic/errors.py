"""Domain failures of the virtual clinic, each with the HTTP status the API answers with."""

from __future__ import annotations


class ClinicError(Exception):
    """A refused operation: ``status`` (4xx), a short ``title`` and the offending ``field``."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class Invalid(ClinicError):
    status = 422
    title = "Invalid input"


class Unauthenticated(ClinicError):
    status = 401
    title = "Not signed in"


class Forbidden(ClinicError):
    status = 403
    title = "Not allowed"


class Missing(ClinicError):
    status = 404
    title = "Not found"


class Conflict(ClinicError):
    status = 409
    title = "Conflict"


class Gone(ClinicError):
    status = 410
    title = "Gone"
