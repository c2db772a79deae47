"""``GET /healthz``: the process answers and its store does too."""

from __future__ import annotations

from aiohttp import web

from control.problems import Problem
from control.services import services


async def health_handler(request: web.Request) -> web.Response:
    store = services(request).store
    try:
        await store.get("health", "probe")
    except Exception as exc:  # whatever the backend raises, the node is not healthy
        raise Problem(503, "store-unavailable", f"the store does not answer: {exc}") from exc
    return web.json_response({"status": "ok", "store": type(store).__name__})
