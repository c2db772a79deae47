"""Structured logs: one JSON object per line on stderr, one line per request or event.

Secrets never reach a log line: request lines carry the path with route parameters that hold
secrets (tokens, PINs) masked and no query string, and no header is logged at all.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from control.clientaddr import Network, client_address

log = logging.getLogger("televisit.access")

# Route parameters that carry a credential: masked in logged paths.
SECRET_PARAMS = frozenset({"token", "code", "pin", "key"})
MASK = "***"
# Loggers kept to warnings unless the level is debug.
CHATTY = ("aioice",)

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields given with extra=}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(
    level: str = "info", stream: Any = None, levels: dict[str, str] | None = None
) -> None:
    """Route every logger through one JSON handler (idempotent: replaces earlier handlers);
    ``levels``: logger name -> its own level (server.log_levels)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's own access log would repeat each request in another format, with query strings.
    logging.getLogger("aiohttp.access").disabled = True
    # Libraries that narrate routine steps at info (aioice: every ICE check's state change,
    # 6-10 lines per connection): at info level operators see only their warnings; at debug
    # level everything.
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "debug" else logging.WARNING)
    for name, own in (levels or {}).items():
        logging.getLogger(name).setLevel(own.upper())


def safe_path(request: web.Request) -> str:
    """The request path with secret route parameters masked (never the query string)."""
    info = request.match_info
    secret = [info[name] for name in SECRET_PARAMS if info.get(name)]
    if not secret:
        return request.path
    parts = request.path.split("/")
    return "/".join(MASK if part in secret else part for part in parts)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def access_log(trusted_proxies: tuple[Network, ...]) -> Middleware:
    """The middleware logging one ``request`` line per request; ``remote`` is the client's
    address, behind ``trusted_proxies`` (``settings.server.proxy_networks``) the one their
    X-Forwarded-For names (control/clientaddr.py, as the rate limiters count it)."""

    @web.middleware
    async def logged(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if log.isEnabledFor(logging.INFO):  # the line's fields cost more than the request
                log.info(
                    "request",
                    extra={
                        "method": request.method,
                        "path": safe_path(request),
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                        "remote": client_address(request, trusted_proxies),
                    },
                )

    return logged
