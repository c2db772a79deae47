"""Reading a request's body into a pydantic model, and its path id and whole-number query
parameters: every failure a problem naming the field."""

from __future__ import annotations

import codecs
import re
from typing import TypeVar

from aiohttp import ClientPayloadError, hdrs, web
from pydantic import BaseModel, ValidationError

from control.models import ID_PATTERN
from control.problems import Problem, invalid, not_found

M = TypeVar("M", bound=BaseModel)

# What aiohttp inflates before a handler reads the body (br with Brotli, zstd with
# backports.zstd installed; without them its parser answered br and zstd with a plain-text 400
# that no handler saw), and identity.
CONTENT_CODINGS = ("gzip", "deflate", "br", "zstd", "identity")


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(body)"


def validation_problem(exc: ValidationError) -> Problem:
    errors = [{"field": _where(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    first = errors[0]
    return invalid(first["field"], first["message"], errors=errors)


async def read_body(request: web.Request, model: type[M]) -> M:
    """Parse the JSON body (whatever Content-Type says: curl -d sends form-encoded by default).

    Raises Problem 400 ``malformed-json`` for a body that is not JSON (or not an object),
    ``malformed-body`` for one that does not decode as its Content-Encoding says, 415
    ``unsupported-encoding`` for a Content-Encoding other than CONTENT_CODINGS (with
    Accept-Encoding naming those, RFC 9110 15.5.16), 422 ``invalid-input`` naming the first
    field the model refuses. Bodies over server.max_body_bytes never get here: aiohttp's
    client_max_size answers 413.
    """
    coding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if coding not in CONTENT_CODINGS:
        # aiohttp passes a coding it does not decode (compress, x-gzip, a list of several)
        # through as it came: the answer would have been "not valid JSON".
        raise Problem(
            415, "unsupported-encoding",
            f"Content-Encoding {coding!r} is not read; send one of {', '.join(CONTENT_CODINGS)}",
            headers={hdrs.ACCEPT_ENCODING: ", ".join(CONTENT_CODINGS)},
        )  # fmt: skip
    try:
        raw = await request.read()
    except (ConnectionError, ClientPayloadError) as exc:
        # The client went away mid-body: nobody reads this answer, but the access log shows a
        # 400 instead of an "unhandled error" with a traceback.
        raise Problem(400, "body-incomplete", "the body ended before its length") from exc
    except web.RequestPayloadError as exc:
        # aiohttp wraps what its parser raised reading the body (bytes that do not inflate as
        # the Content-Encoding says, broken chunks); its own message is in the cause.
        why = getattr(exc.__cause__, "message", None) or str(exc)
        raise Problem(400, "malformed-body", f"the body could not be read: {why}") from exc
    try:
        # RFC 8259 8.1: a parser may ignore a byte order mark (some Windows tools send one).
        return model.model_validate_json(raw.removeprefix(codecs.BOM_UTF8) or b"{}")
    except ValidationError as exc:
        # Bad JSON and a body that is no object are told apart from pydantic's own parse: a
        # second parse with the json module raised what it calls ValueError on inputs
        # pydantic refuses cleanly (an integer of 5,000 digits, a 500).
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            detail = first["msg"].removeprefix("Invalid JSON: ")
            raise Problem(400, "malformed-json", f"the body is not valid JSON: {detail}") from exc
        if first["type"] == "model_type" and not first["loc"]:
            raise Problem(400, "malformed-json", "the body must be a JSON object") from exc
        raise validation_problem(exc) from exc


_ID = re.compile(ID_PATTERN)
MAX_ID_CHARS = 128


def is_id(text: str) -> bool:
    return 0 < len(text) <= MAX_ID_CHARS and bool(_ID.match(text))


def path_id(request: web.Request, what: str) -> str:
    """The ``{id}`` of the path; one that cannot be an id is simply not found."""
    value = request.match_info["id"]
    if not is_id(value):
        raise not_found(what)
    return value


# Longer than any bound a query parameter has (MAX_OFFSET is 10**9) with room for leading
# zeros, and far below int()'s 4,300-digit limit on decimal strings.
MAX_NUMBER_DIGITS = 20


def is_whole_number(text: str) -> bool:
    """ASCII digits only, at most MAX_NUMBER_DIGITS: str.isdigit() also takes "²" and "١",
    and int() refuses the first (ValueError) and reads the second as 1."""
    return 0 < len(text) <= MAX_NUMBER_DIGITS and text.isascii() and text.isdigit()


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """The query parameter ``name`` as a whole number in ``lo..hi`` (``default`` when absent).
    Raises a 422 problem naming it otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not is_whole_number(raw) or not lo <= int(raw) <= hi:
        raise invalid(name, f"must be a whole number from {lo} to {hi}")
    return int(raw)
