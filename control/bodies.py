"""Reading a request body into a pydantic model, every failure a problem naming the field."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from control.problems import Problem, invalid

M = TypeVar("M", bound=BaseModel)


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(body)"


def validation_problem(exc: ValidationError) -> Problem:
    errors = [{"field": _where(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    first = errors[0]
    return invalid(first["field"], first["message"], errors=errors)


async def read_body(request: web.Request, model: type[M]) -> M:
    """Parse the JSON body (whatever Content-Type says: curl -d sends form-encoded by default).

    Bodies over server.max_body_bytes never get here: aiohttp's client_max_size answers 413.
    """
    raw = await request.read()
    try:
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, "malformed-json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Problem(400, "malformed-json", "the body must be a JSON object")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise validation_problem(exc) from exc
